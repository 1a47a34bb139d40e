"""The report's range queries: prometheus-api-client, sent under the outbound policy, against
a real Prometheus."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from activities.errors import MetricsRefused, MetricsTimeout, MetricsUnavailable
from activities.metrics import PrometheusProvider
from activities.metrics.ranges import PrometheusRanges
from plans import PrometheusSource

from .conftest import HTTPRecorder, Prometheus, free_port


def source(url: str, **extra: str) -> PrometheusSource:
    return PrometheusSource.model_validate({"url": url, **extra})


def last_minute() -> tuple[datetime, datetime]:
    end = datetime.now(UTC)
    return end - timedelta(seconds=60), end


def scraped_for_a_while(prometheus: Prometheus, samples: int = 5) -> None:
    """Wait (up to 30 s) until Prometheus holds a few of its own scrapes, so a range read
    now has a point at its steps, not only a first sample newer than the last step."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = prometheus.query('count_over_time(up{job="prometheus"}[1m])')
        if found and float(found[0]["value"][1]) >= samples:
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus kept fewer than {samples} of its own scrapes for 30 s")


def test_a_range_gives_one_value_a_step(prometheus: Prometheus) -> None:
    scraped_for_a_while(prometheus)
    start, end = last_minute()
    ranges = PrometheusRanges(source(prometheus.url))
    try:
        found = ranges.query_range("scalar(vector(2.5)) + 0 * time()", start, end, 5.0)
        up = ranges.query_range('up{job="prometheus"}', start, end, 2.0)
    finally:
        ranges.close()
    assert found.values is not None and set(found.values) == {2.5}
    # Prometheus aligns the steps to the start: 60 s at 5 s is 13 points, 5 s apart.
    assert len(found.times) == 13
    assert {round(b - a, 6) for a, b in zip(found.times, found.times[1:], strict=False)} == {5.0}
    assert found.times[0] == round(start.timestamp())
    assert up.values and set(up.values) == {1.0}


def test_several_series_say_so(prometheus: Prometheus) -> None:
    ranges = PrometheusRanges(source(prometheus.url))
    found = ranges.query_range("up", *last_minute(), 5.0)
    assert found.values is None
    assert found.reason == "query returned 2 series; aggregate it with sum() or max()"


def test_errors_keep_the_providers_words(prometheus: Prometheus) -> None:
    with pytest.raises(MetricsRefused, match=r"rejected the query: .*parse error"):
        PrometheusRanges(source(prometheus.url)).query_range("sum(up", *last_minute(), 5.0)
    with pytest.raises(MetricsRefused, match="HTTP 404"):
        PrometheusRanges(source(prometheus.url + "/prom")).query_range("up", *last_minute(), 5.0)
    with pytest.raises(MetricsUnavailable, match="cannot connect"):
        PrometheusRanges(source(f"http://127.0.0.1:{free_port()}")).query_range(
            "up", *last_minute(), 5.0
        )


def test_a_silent_server_times_out_once_without_retries(silent_port: int) -> None:
    ranges = PrometheusRanges(source(f"http://127.0.0.1:{silent_port}", timeout="1s"))
    began = datetime.now(UTC)
    with pytest.raises(MetricsTimeout):
        ranges.query_range("up", *last_minute(), 5.0)
    # The client's own retrying adapter (3 tries, backoff) is replaced: one deadline.
    assert (datetime.now(UTC) - began).total_seconds() < 3


def test_the_token_and_the_range_reach_prometheus(
    prometheus_proxy: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_PLAN_SECRETS", "PROM_*")
    monkeypatch.setenv("PROM_TOKEN", "range-token")
    ranges = PrometheusRanges(source(prometheus_proxy.url, bearer_token_env="PROM_TOKEN"))
    start, end = last_minute()
    before = len(prometheus_proxy.received)
    assert ranges.query_range("vector(1)", start, end, 7.5).values
    (request,) = prometheus_proxy.received[before:]
    assert request.headers["Authorization"] == "Bearer range-token"
    asked = urlsplit(request.path)
    assert asked.path == "/api/v1/query_range"
    assert parse_qs(asked.query) == {
        "query": ["vector(1)"],
        "start": [str(round(start.timestamp()))],
        "end": [str(round(end.timestamp()))],
        "step": ["7.5"],
    }


def test_the_outbound_policy_holds(prometheus: Prometheus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_OUTBOUND_HOSTS", "prometheus.internal")
    with pytest.raises(MetricsRefused, match=r"127\.0\.0\.1"):
        PrometheusRanges(source(prometheus.url)).query_range("up", *last_minute(), 5.0)
    monkeypatch.setenv("ROLLOUT_OUTBOUND_HOSTS", "prometheus.internal,127.0.0.0/8")
    assert PrometheusRanges(source(prometheus.url)).query_range("vector(1)", *last_minute(), 5.0)


def test_the_checks_provider_takes_a_step_of_a_fraction_of_a_second_too(
    prometheus: Prometheus,
) -> None:
    # A report's step is its span over 240 points: rarely whole seconds.
    found = PrometheusProvider(source(prometheus.url)).query_range("vector(3)", *last_minute(), 7.5)
    assert found.values is not None and set(found.values) == {3.0}
    assert len(found.times) == 9
