"""Prometheus instant and range queries over the HTTP API, through the outbound policy.

The provider asks through ``activities.outbound``, the one way the worker sends requests to
what plans name: the policy's address checks, a byte cap and one deadline per query.
``benchmarks/prometheus_query.py`` measures what a query costs the worker; its figures, and
why the checks ask through this and not prometheus-api-client (which the report's ranges use,
``activities.metrics.ranges``), are in ``benchmarks/README.md``.
"""

from __future__ import annotations

import base64
import json
import math
import netrc
import os
import ssl
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from activities.errors import MetricsError, MetricsRefused, MetricsTimeout, MetricsUnavailable
from activities.metrics.reading import Reading, Series
from activities.outbound import (
    OutboundError,
    OutboundRefused,
    OutboundTimeout,
    OutboundTooLarge,
    Session,
    excerpt,
)
from activities.plan_secrets import plan_secret
from plans import PrometheusSource

# A range query over a day at one point a minute is about 1,440 points, some 40 kB of
# JSON a series; an answer a hundred times that long is a query to aggregate, not to read.
MAX_ANSWER_BYTES = 16 * 1024 * 1024


def session_for(url: str) -> Session:
    """A session that reads the environment once: proxies, and a CA bundle for https.

    The worker's environment does not change while it runs, so reading the proxy and CA
    variables when the provider is made is the same answer, once. No retries: they belong
    to the caller's policy (see activities.gates), not to the HTTP layer.
    """
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    context = ssl.create_default_context(cafile=bundle or None)
    return Session(ssl_context=context, max_connections=4)


def _netrc_login(url: str) -> tuple[str, str] | None:
    """The login ``~/.netrc`` (or ``$NETRC``) holds for the URL's host, if any."""
    host = urlsplit(url).hostname or ""
    try:
        found = netrc.netrc(os.environ.get("NETRC")).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    if not found:
        return None
    login, _, password = found
    return login, password or ""


class PrometheusProvider:
    """Runs instant and range queries against one Prometheus server."""

    def __init__(self, spec: PrometheusSource) -> None:
        self.spec = spec
        self.url = spec.url.rstrip("/")
        self.timeout = spec.timeout.total_seconds()
        headers: dict[str, str] = {"Accept": "application/json"}
        if spec.bearer_token_env:
            token = (plan_secret(spec.bearer_token_env, "bearer_token_env") or "").strip()
            if not token:
                raise MetricsRefused(
                    f"environment variable {spec.bearer_token_env} is not set or empty: put the"
                    " Prometheus bearer token there in the worker's environment"
                )
            headers["Authorization"] = f"Bearer {token}"
        else:
            login = _netrc_login(self.url)
            if login:
                basic = base64.b64encode(":".join(login).encode()).decode("ascii")
                headers["Authorization"] = f"Basic {basic}"
        self.headers = list(headers.items())
        self.session = session_for(self.url)

    def query(self, promql: str) -> Reading:
        """One instant query, reduced to a single number."""
        return reading_of(self._get("/api/v1/query", {"query": promql}))

    def query_range(self, promql: str, start: datetime, end: datetime, step_s: float) -> Series:
        """One range query from ``start`` to ``end``, one value per ``step_s`` seconds."""
        fields = {
            "query": promql,
            "start": str(round(start.timestamp())),
            "end": str(round(end.timestamp())),
            "step": f"{step_s:g}",  # seconds: "7.5s" is no Prometheus duration
        }
        return series_of(self._get("/api/v1/query_range", fields))

    def query_range_by(
        self, promql: str, label: str, start: datetime, end: datetime, step_s: float
    ) -> Series:
        """A range query answering one series per value of ``label`` (a histogram's ``le``).

        The answer's ``labelled`` holds each series by its label's value; ``times`` are
        every step any series has.
        """
        fields = {
            "query": promql,
            "start": str(round(start.timestamp())),
            "end": str(round(end.timestamp())),
            "step": f"{step_s:g}",  # seconds: "7.5s" is no Prometheus duration
        }
        return labelled_series_of(self._get("/api/v1/query_range", fields), label)

    def _get(self, path: str, fields: Mapping[str, str]) -> Any:
        """One GET of the HTTP API: its ``data.result``, or the project's error for why not."""
        try:
            answer = self.session.fetch(
                "GET",
                f"{self.url}{path}?{urlencode(fields)}",
                headers=self.headers,
                deadline_s=self.timeout,
                max_bytes=MAX_ANSWER_BYTES,
            )
        except OutboundError as error:
            raise self.request_error(error) from None
        if answer.status_code != 200:
            raise self.http_error(answer.status_code, answer.content)
        try:
            return json.loads(answer.content)["data"]["result"]
        except (ValueError, KeyError, TypeError):
            raise self.not_the_api() from None

    def close(self) -> None:
        """Close the connections."""
        self.session.close()

    def not_the_api(self) -> MetricsRefused:
        """The error for an answer that is not the HTTP API's JSON."""
        return MetricsRefused(
            f"{self.url} did not answer like the Prometheus HTTP API: check metrics.url"
        )

    def request_error(self, error: OutboundError) -> MetricsError:
        """The project's error for a request that got no answer."""
        if isinstance(error, OutboundTimeout):
            return MetricsTimeout(
                f"no answer from {self.url} within {self.timeout:g}s: Prometheus is overloaded"
                " or the query is too heavy"
            )
        if isinstance(error, OutboundTooLarge):
            return MetricsRefused(f"{error}: aggregate the query, or shorten its range")
        if isinstance(error, OutboundRefused):
            return MetricsRefused(f"{self.url}: {error}")
        return MetricsUnavailable(f"cannot connect to {self.url}: {error.reason}")

    def http_error(self, status: int, body: bytes) -> MetricsRefused | MetricsUnavailable:
        """The project's error for an answer other than HTTP 200."""
        said = _prometheus_error(body)
        if status in (400, 422):
            return MetricsRefused(f"Prometheus rejected the query: {said}")
        if status in (401, 403):
            where = (
                f"the token in {self.spec.bearer_token_env}"
                if self.spec.bearer_token_env
                else "metrics.bearer_token_env (none is set)"
            )
            return MetricsRefused(
                f"{self.url} refused the credentials (HTTP {status}): check {where}"
            )
        if status == 404:
            return MetricsRefused(
                f"no Prometheus API at {self.url} (HTTP 404): check metrics.url and its path prefix"
            )
        if status == 408 or status == 429 or status >= 500:
            return MetricsUnavailable(f"{self.url} answered HTTP {status}: {said}")
        return MetricsRefused(f"{self.url} answered HTTP {status}: {said}")


def reading_of(result: Any) -> Reading:
    """Reduce the ``data.result`` of an instant query to one number, or say why there is none."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return _number(result[1])  # a scalar or a string: [time, "value"]
    if not isinstance(result, list):
        return Reading(None, f"unexpected answer from Prometheus: {type(result).__name__}")
    if not result:
        return Reading(None, "no data: the query matched no series")
    if any(isinstance(s, dict) and "values" in s for s in result):
        return Reading(
            None,
            "the query returned a range vector: wrap it in rate(), avg_over_time() or similar",
        )
    if len(result) > 1:
        return Reading(
            None, f"query returned {len(result)} series; aggregate it with sum() or max()"
        )
    return _number(result[0]["value"][1])


def series_of(result: Any) -> Series:
    """Reduce the ``data.result`` of a range query to one series of numbers, or say why not."""
    if not isinstance(result, list):
        return Series(None, f"unexpected answer from Prometheus: {type(result).__name__}")
    if not result:
        return Series(None, "no data: the query matched no series")
    if len(result) > 1:
        return Series(
            None, f"query returned {len(result)} series; aggregate it with sum() or max()"
        )
    try:
        pairs = [(float(at), float(value)) for at, value in result[0]["values"]]
    except (KeyError, TypeError, ValueError):
        return Series(None, "the range query did not return numbers")
    return Series(tuple(v for _, v in pairs), times=tuple(t for t, _ in pairs))


def labelled_series_of(result: Any, label: str) -> Series:
    """The series of a range query keyed by ``label``'s value, or why there are none."""
    if not isinstance(result, list):
        return Series(None, f"unexpected answer from Prometheus: {type(result).__name__}")
    if not result:
        return Series(None, "no data: the query matched no series")
    if len(result) == 1 and isinstance(result[0], dict) and "histograms" in result[0]:
        return native_series_of(result[0]["histograms"], label)
    found: dict[str, dict[float, float]] = {}
    try:
        for series in result:
            key = series["metric"][label]
            found[key] = {float(at): float(value) for at, value in series["values"]}
    except KeyError:
        return Series(None, f"a series has no {label} label: aggregate it with sum by ({label})")
    except (TypeError, ValueError):
        return Series(None, "the range query did not return numbers")
    times = tuple(sorted({t for values in found.values() for t in values}))
    labelled = {key: tuple(values.get(t, math.nan) for t in times) for key, values in found.items()}
    return Series((), times=times, labelled=labelled)


def native_series_of(points: Any, label: str) -> Series:
    """A native histogram's range as classic buckets: per bound, the count at or below it.

    Each point is ``[time, {"count", "sum", "buckets": [[rule, lower, upper, count], ...]}]``;
    its buckets are sparse (an empty one is left out), so every step is read at the union
    of the upper bounds seen, which is exact for a count that is zero between them.
    """
    try:
        steps = [
            (
                float(at),
                [(float(b[2]), float(b[3])) for b in h.get("buckets", [])],
                float(h["count"]),
            )
            for at, h in points
        ]
    except (KeyError, TypeError, ValueError, IndexError):
        return Series(None, "the native histogram's answer did not hold buckets")
    bounds = sorted({upper for _, buckets, _ in steps for upper, _ in buckets if upper > 0})
    labelled: dict[str, tuple[float, ...]] = {}
    for bound in bounds:
        labelled[repr(bound)] = tuple(
            sum(count for upper, count in buckets if upper <= bound) for _, buckets, _ in steps
        )
    labelled["+Inf"] = tuple(total for _, _, total in steps)
    del label  # native histograms have no le series: their bounds stand for it
    return Series((), times=tuple(at for at, _, _ in steps), labelled=labelled)


def _number(text: Any) -> Reading:
    try:
        return Reading(float(text))
    except (TypeError, ValueError):
        # A string result is the server's text, not a measurement: not shown.
        return Reading(None, "the query returned something that is not a number")


def _prometheus_error(body: bytes) -> str:
    """The ``error`` field of an error answer, or the start of the answer's text, cleaned."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return excerpt(text)
    if isinstance(data, dict) and "error" in data:
        return excerpt(str(data["error"]))
    return excerpt(text)
