"""Prometheus instant and range queries over the HTTP API, on one urllib3 connection pool.

prometheus-api-client was the client until it showed as the cost of a check: at a thousand
rollouts it was the largest single part of the worker's time under py-spy. Nearly all of
its cost is requests' own, and its one transport setting is a ``requests.Session``, so no
configuration of it avoids that. `benchmarks/prometheus_query.py`, one run: 1.50 ms of CPU
a query through prometheus-api-client, 1.33 ms through a bare requests session, 0.64 ms
through this provider.
"""

from __future__ import annotations

import json
import netrc
import os
import re
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, ProxyError

from activities.errors import MetricsError, MetricsRefused, MetricsTimeout, MetricsUnavailable
from activities.metrics.reading import Reading, Series
from plans import PrometheusSource

_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()\]]+)")


def pool_for(url: str, timeout_s: float) -> urllib3.PoolManager:
    """A connection pool for ``url`` that reads the environment once (proxy, CA bundle).

    The worker's environment does not change while it runs, so reading the proxy and CA
    variables when the provider is made is the same answer, once. No retries: they belong
    to the caller's policy (see activities.gates), not to the HTTP layer.
    """
    settings: dict[str, Any] = {
        "retries": False,
        "timeout": urllib3.Timeout(total=timeout_s),
        "maxsize": 4,
    }
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        settings["ca_certs"] = bundle
    proxy = _proxy_for(url)
    if proxy:
        return urllib3.ProxyManager(proxy, **settings)
    return urllib3.PoolManager(**settings)


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTP(S)_PROXY``, ``NO_PROXY``), if any."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if urllib.request.proxy_bypass(parts.hostname or ""):  # NO_PROXY
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


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
            token = os.environ.get(spec.bearer_token_env, "").strip()
            if not token:
                raise MetricsRefused(
                    f"environment variable {spec.bearer_token_env} is not set or empty: put the"
                    " Prometheus bearer token there in the worker's environment"
                )
            headers["Authorization"] = f"Bearer {token}"
        else:
            login = _netrc_login(self.url)
            if login:
                basic = urllib3.make_headers(basic_auth=":".join(login))
                headers["Authorization"] = basic["authorization"]
        self._headers = headers
        self._pool = pool_for(self.url, self.timeout)

    def query(self, promql: str) -> Reading:
        """One instant query, reduced to a single number."""
        return reading_of(self._get("/api/v1/query", {"query": promql}))

    def query_range(self, promql: str, start: datetime, end: datetime, step_s: float) -> Series:
        """One range query from ``start`` to ``end``, one value per ``step_s`` seconds."""
        fields = {
            "query": promql,
            "start": str(round(start.timestamp())),
            "end": str(round(end.timestamp())),
            "step": f"{step_s:g}s",
        }
        return series_of(self._get("/api/v1/query_range", fields))

    def _get(self, path: str, fields: Mapping[str, str]) -> Any:
        """One GET of the HTTP API: its ``data.result``, or the project's error for why not."""
        try:
            answer = self._pool.request(
                "GET", self.url + path, fields=fields, headers=self._headers
            )
        except HTTPError as error:
            raise self._request_error(error) from None
        if answer.status != 200:
            raise self._http_error(answer.status, answer.data)
        try:
            return json.loads(answer.data)["data"]["result"]
        except (ValueError, KeyError, TypeError):
            raise MetricsRefused(
                f"{self.url} did not answer like the Prometheus HTTP API: check metrics.url"
            ) from None

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.clear()

    def _request_error(self, error: HTTPError) -> MetricsError:
        reason = getattr(error, "reason", None) or error
        timed_out = isinstance(reason, urllib3.exceptions.TimeoutError)
        if timed_out and not isinstance(reason, NewConnectionError):
            return MetricsTimeout(
                f"no answer from {self.url} within {self.timeout:g}s: Prometheus is overloaded"
                " or the query is too heavy"
            )
        if isinstance(reason, NewConnectionError | ProxyError | OSError):
            found = _ERRNO.search(str(reason))
            why = found.group(1).strip() if found else "connection failed"
            return MetricsUnavailable(f"cannot connect to {self.url}: {why}")
        return MetricsUnavailable(f"request to {self.url} failed: {type(reason).__name__}")

    def _http_error(self, status: int, body: bytes) -> MetricsRefused | MetricsUnavailable:
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


def _number(text: Any) -> Reading:
    try:
        return Reading(float(text))
    except (TypeError, ValueError):
        return Reading(None, f"the query returned {text!r}, not a number")


def _prometheus_error(body: bytes) -> str:
    """The ``error`` field of an error answer, or the start of the answer's text."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return text.strip()[:300]
