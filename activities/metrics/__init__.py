"""Metric providers: one Protocol, one module per source, a registry keyed by `kind`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from activities.errors import MetricsRefused
from activities.metrics.prometheus import PrometheusProvider
from activities.metrics.reading import Reading, Series
from activities.metrics.web import WebProvider
from activities.registry import of_kind
from plans import MetricsSource


class MetricProvider(Protocol):
    """Answers a query with one number, a range query with a series (or none, and why)."""

    def query(self, promql: str) -> Reading:
        """Run an instant query.

        Raises MetricsUnavailable when the source cannot be reached (worth retrying) and
        MetricsRefused when it rejects the query or the credentials (not worth retrying).
        """
        ...

    def query_range(self, promql: str, start: datetime, end: datetime, step_s: float) -> Series:
        """Run a range query: one value per step from start to end (same errors as query)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# Each entry builds a provider from its own plan model; Any because every kind has its own.
PROVIDERS: dict[str, Callable[[Any], MetricProvider]] = {
    "prometheus": PrometheusProvider,
    "web": WebProvider,
}


def provider_for(spec: MetricsSource) -> MetricProvider:
    """The provider for a plan's ``metrics`` section; reads credentials from the environment."""
    return of_kind(PROVIDERS, spec.kind, "metrics source", MetricsRefused)(spec)


__all__ = [
    "PROVIDERS",
    "MetricProvider",
    "PrometheusProvider",
    "Reading",
    "Series",
    "provider_for",
]
