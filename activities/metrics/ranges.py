"""The report's Prometheus ranges, asked through prometheus-api-client.

``PrometheusConnect.custom_query_range`` builds and reads the range queries; its requests go
through ``OutboundAdapter``, a requests transport that sends them with the worker's own
``activities.outbound`` session, so a report asks Prometheus under the same policy as a
check (the address checks, a byte cap, one deadline a request) and with the same
credentials. The checks themselves keep ``PrometheusProvider``: a check costs a third of the
CPU through it (``benchmarks/prometheus_query.py``, figures in ``benchmarks/README.md``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from activities.errors import MetricsUnavailable
from activities.metrics.prometheus import MAX_ANSWER_BYTES, PrometheusProvider, series_of
from activities.metrics.reading import Series
from activities.outbound import Answer, OutboundError, Session
from plans import PrometheusSource

# Headers requests adds that the outbound session speaks for itself: it reads answers as
# they come (no compression) and keeps its own connections.
UNSENT = frozenset({"accept-encoding", "connection"})


class OutboundAdapter(BaseAdapter):
    """A requests transport that sends through an ``activities.outbound`` session.

    Its errors are the outbound ones (OutboundError), raised through requests unchanged;
    ``last`` is the answer it read last, for the caller to explain an HTTP error.
    """

    def __init__(self, session: Session, deadline_s: float) -> None:
        super().__init__()
        self.session = session
        self.deadline_s = deadline_s
        self.last: Answer | None = None

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        body = request.body.encode() if isinstance(request.body, str) else request.body
        answer = self.session.fetch(
            request.method or "GET",
            request.url or "",
            headers=[(k, v) for k, v in request.headers.items() if k.lower() not in UNSENT],
            content=body,
            deadline_s=self.deadline_s,
            max_bytes=MAX_ANSWER_BYTES,
        )
        self.last = answer
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers.items())
        response._content = answer.content
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        """The session is the provider's; it closes it."""


class PrometheusRanges:
    """Range queries against one Prometheus server, for reports."""

    def __init__(self, spec: PrometheusSource) -> None:
        # The provider holds the credentials, the outbound session and the error wording.
        self.provider = PrometheusProvider(spec)
        http = requests.Session()
        http.trust_env = False  # proxies and the CA bundle: the outbound session's
        self.client = PrometheusConnect(
            url=self.provider.url,
            headers=dict(self.provider.headers),
            session=http,
        )
        # The plan's timeout is the adapter's one deadline for a request.
        self.adapter = OutboundAdapter(self.provider.session, self.provider.timeout)
        # Mounted after PrometheusConnect mounted its retrying adapter for the same prefix:
        # retries belong to the caller's policy, and this one replaces it.
        http.mount(self.provider.url, self.adapter)

    def query_range(self, promql: str, start: datetime, end: datetime, step_s: float) -> Series:
        """One range query from ``start`` to ``end``, one value per ``step_s`` seconds."""
        try:
            result = self.client.custom_query_range(promql, start, end, step=f"{step_s:g}")
        except OutboundError as error:
            raise self.provider.request_error(error) from None
        except PrometheusApiClientException:
            answer = self.adapter.last
            if answer is None:
                raise MetricsUnavailable(f"{self.provider.url} gave no answer") from None
            raise self.provider.http_error(answer.status_code, answer.content) from None
        except (ValueError, KeyError, TypeError):
            raise self.provider.not_the_api() from None
        return series_of(result)

    def close(self) -> None:
        """Close the connections."""
        self.client.close()
        self.provider.close()
