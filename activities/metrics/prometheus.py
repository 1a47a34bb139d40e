"""Prometheus instant queries through prometheus-api-client."""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests
import urllib3
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from activities.errors import MetricsError, MetricsRefused, MetricsTimeout, MetricsUnavailable
from activities.metrics.reading import Reading, Series
from plans import PrometheusSource

_STATUS = re.compile(r"^HTTP Status Code (\d+) \((.*)\)$", re.DOTALL)
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()\]]+)")


def session_for(url: str) -> requests.Session:
    """An HTTP session that reads the environment (proxies, CA bundle, .netrc) once.

    requests reads those variables again for every request: with a check every few seconds
    per rollout that was about a quarter of the Prometheus client's CPU in the worker
    (`benchmarks/scale.py` under py-spy). The worker's environment does not change while it
    runs, so reading it when the provider is made is the same answer, once.
    """
    session = requests.Session()
    session.proxies = requests.utils.get_environ_proxies(url)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.verify = bundle or True
    session.auth = requests.utils.get_netrc_auth(url)
    session.trust_env = False
    return session


class PrometheusProvider:
    """Runs instant queries against one Prometheus server."""

    def __init__(self, spec: PrometheusSource) -> None:
        self.spec = spec
        self.url = spec.url
        self.timeout = spec.timeout.total_seconds()
        headers: dict[str, str] = {}
        if spec.bearer_token_env:
            token = os.environ.get(spec.bearer_token_env, "").strip()
            if not token:
                raise MetricsRefused(
                    f"environment variable {spec.bearer_token_env} is not set or empty: put the"
                    " Prometheus bearer token there in the worker's environment"
                )
            headers["Authorization"] = f"Bearer {token}"
        # Retries belong to the caller's policy (see activities.gates), not to the HTTP layer,
        # whose default would wait seconds between attempts.
        self._client = PrometheusConnect(
            url=self.url,
            headers=headers,
            retry=Retry(total=0, raise_on_status=False),
            session=session_for(self.url),
            # requests takes float seconds; the client's annotation says int.
            timeout=self.timeout,  # type: ignore[arg-type]
        )

    def query(self, promql: str) -> Reading:
        """One instant query, reduced to a single number."""
        return reading_of(self._ask(lambda: self._client.custom_query(promql)))

    def query_range(self, promql: str, start: datetime, end: datetime, step_s: float) -> Series:
        """One range query from ``start`` to ``end``, one value per ``step_s`` seconds."""
        step = f"{step_s:g}s"
        return series_of(
            self._ask(lambda: self._client.custom_query_range(promql, start, end, step))
        )

    def _ask(self, call: Callable[[], Any]) -> Any:
        """Run one API call, turning the client's errors into the project's."""
        try:
            return call()
        except PrometheusApiClientException as error:
            raise self._http_error(str(error)) from None
        except requests.RequestException as error:
            raise self._request_error(error) from None
        except (ValueError, KeyError, TypeError):
            raise MetricsRefused(
                f"{self.url} did not answer like the Prometheus HTTP API: check metrics.url"
            ) from None

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()

    def _request_error(self, error: requests.RequestException) -> MetricsError:
        if isinstance(error, requests.JSONDecodeError):
            return MetricsRefused(
                f"{self.url} did not answer like the Prometheus HTTP API: check metrics.url"
            )
        if _timed_out(error):
            return MetricsTimeout(
                f"no answer from {self.url} within {self.timeout:g}s: Prometheus is overloaded"
                " or the query is too heavy"
            )
        if isinstance(error, requests.ConnectionError):
            found = _ERRNO.search(str(error))
            why = found.group(1).strip() if found else "connection failed"
            return MetricsUnavailable(f"cannot connect to {self.url}: {why}")
        return MetricsUnavailable(f"request to {self.url} failed: {type(error).__name__}")

    def _http_error(self, message: str) -> MetricsRefused | MetricsUnavailable:
        match = _STATUS.match(message)
        if not match:
            return MetricsUnavailable(f"{self.url}: {message}")
        status = int(match.group(1))
        said = _prometheus_error(match.group(2))
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


def _timed_out(error: requests.RequestException) -> bool:
    # Without retries urllib3 wraps a read timeout in MaxRetryError, which requests then
    # reports as a ConnectionError: look at the reason underneath.
    if isinstance(error, requests.Timeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


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


def _prometheus_error(body: str) -> str:
    """The ``error`` field of an error answer, from the client's ``b'...'`` rendering of it."""
    try:
        raw = ast.literal_eval(body)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    except (ValueError, SyntaxError):
        text = body
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return text.strip()[:300]
