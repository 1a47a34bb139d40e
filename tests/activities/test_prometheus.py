"""PrometheusProvider and gate evaluation against a real Prometheus."""

from __future__ import annotations

import base64
import math
import time
from pathlib import Path

import pytest

from activities import gates
from activities.errors import MetricsRefused, MetricsTimeout, MetricsUnavailable
from activities.metrics import PrometheusProvider, Reading, provider_for
from activities.metrics.prometheus import reading_of
from activities.routers import router_for
from plans import (
    GateCheck,
    GateOutcome,
    HAProxyRouter,
    PrometheusSource,
    TrafficSplit,
    gate_from,
)

from .conftest import HAProxy, HTTPRecorder, Prometheus, free_port


def source(url: str, **extra: str) -> PrometheusSource:
    return PrometheusSource.model_validate({"url": url, **extra})


@pytest.fixture(scope="module")
def provider(prometheus: Prometheus) -> PrometheusProvider:
    built = provider_for(source(prometheus.url))
    assert isinstance(built, PrometheusProvider)
    return built


def test_single_series_gives_its_value(provider: PrometheusProvider) -> None:
    assert provider.query('up{job="prometheus"}') == Reading(1.0)
    assert provider.query("prometheus_build_info") == Reading(1.0)
    assert provider.query("scalar(vector(2.5))") == Reading(2.5)


def test_empty_result_has_no_value_and_says_so(provider: PrometheusProvider) -> None:
    reading = provider.query('up{job="no-such-job"}')
    assert reading.value is None
    assert reading.reason == "no data: the query matched no series"


def test_nan_is_passed_through_for_the_judge(provider: PrometheusProvider) -> None:
    value = provider.query("vector(0) / vector(0)").value
    assert value is not None and math.isnan(value)


def test_several_series_are_inconclusive(provider: PrometheusProvider) -> None:
    assert provider.query("up") == Reading(
        None, "query returned 2 series; aggregate it with sum() or max()"
    )


def test_range_vector_is_inconclusive(provider: PrometheusProvider) -> None:
    reading = provider.query('up{job="prometheus"}[10s]')
    assert reading.value is None
    assert "range vector" in reading.reason


def test_bad_query_is_refused_with_prometheus_words(provider: PrometheusProvider) -> None:
    with pytest.raises(MetricsRefused, match=r"rejected the query: .*parse error") as caught:
        provider.query("sum(up")
    assert not caught.value.retryable


def test_wrong_path_prefix_is_refused(prometheus: Prometheus) -> None:
    with pytest.raises(MetricsRefused, match="HTTP 404"):
        PrometheusProvider(source(prometheus.url + "/prom")).query("up")


def test_closed_port_is_unavailable() -> None:
    port = free_port()
    with pytest.raises(MetricsUnavailable, match=f"127.0.0.1:{port}: Connection refused"):
        PrometheusProvider(source(f"http://127.0.0.1:{port}")).query("up")


def test_silent_server_times_out(silent_port: int) -> None:
    provider = PrometheusProvider(source(f"http://127.0.0.1:{silent_port}", timeout="300ms"))
    with pytest.raises(MetricsTimeout, match=r"within 0\.3s"):
        provider.query("up")


def test_reading_of_answer_shapes() -> None:
    assert reading_of([1.0, "3"]) == Reading(3.0)
    assert reading_of([1.0, "text"]).value is None
    assert reading_of([]) == Reading(None, "no data: the query matched no series")
    three = [{"metric": {}, "value": [1.0, "1"]}] * 3
    assert reading_of(three).reason == "query returned 3 series; aggregate it with sum() or max()"


def test_evaluate_judges_each_gate_and_isolates_a_bad_query(provider: PrometheusProvider) -> None:
    plan_gates = [
        gate_from(name="up", query='up{job="$service"}', min=1),
        gate_from(name="broken", query="sum(up", max=1),
        gate_from(name="empty", query='up{job="nothing"}', max=1),
        gate_from(name="nan", query="vector(0) / vector(0)", max=1),
        gate_from(name="errors", query="vector(0.31)", max=0.05),
        gate_from(name="many", query="up", min=1),
    ]
    beats: list[None] = []
    verdicts = gates.evaluate(
        plan_gates,
        provider,
        {"service": "prometheus"},
        source=provider.spec,
        progress=lambda: beats.append(None),
    )
    by_name = {v.gate: v for v in verdicts}
    assert [v.gate for v in verdicts] == [g.name for g in plan_gates]
    assert len(beats) == len(plan_gates)
    assert by_name["up"].outcome is GateOutcome.PASS
    assert by_name["up"].value == 1.0
    assert by_name["up"].query == 'up{job="prometheus"}'
    assert by_name["broken"].outcome is GateOutcome.INCONCLUSIVE
    assert "parse error" in by_name["broken"].reason
    assert by_name["empty"].outcome is GateOutcome.INCONCLUSIVE
    assert by_name["empty"].reason.startswith("no data")
    assert by_name["nan"].outcome is GateOutcome.INCONCLUSIVE
    assert "NaN" in by_name["nan"].reason
    assert by_name["errors"].outcome is GateOutcome.FAIL
    assert by_name["errors"].reason == "0.31 > max 0.05"
    assert by_name["many"].outcome is GateOutcome.INCONCLUSIVE
    assert "2 series" in by_name["many"].reason
    assert all(v.at is not None for v in verdicts)


class Counting:
    def __init__(self, inner: PrometheusProvider) -> None:
        self.inner = inner
        self.calls = 0

    def query(self, promql: str) -> Reading:
        self.calls += 1
        return self.inner.query(promql)

    def close(self) -> None:
        self.inner.close()


def test_unreachable_source_is_retried_then_every_gate_inconclusive() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    counting = Counting(PrometheusProvider(source(url)))
    slept: list[float] = []
    plan_gates = [
        gate_from(name="a", query="vector(1)", max=1),
        gate_from(name="b", query="up", max=1),
    ]
    verdicts = gates.evaluate(plan_gates, counting, {}, source=source(url), sleep=slept.append)
    assert counting.calls == gates.ATTEMPTS
    assert slept == list(gates.BACKOFF_S)
    assert [v.outcome for v in verdicts] == [GateOutcome.INCONCLUSIVE] * 2
    for verdict in verdicts:
        assert verdict.reason.startswith(f"prometheus unreachable: cannot connect to {url}")


def test_timeout_is_not_retried(silent_port: int) -> None:
    provider = PrometheusProvider(source(f"http://127.0.0.1:{silent_port}", timeout="200ms"))
    slept: list[float] = []
    started = time.monotonic()
    (verdict,) = gates.evaluate(
        [gate_from(name="a", query="up", max=1)],
        provider,
        {},
        source=provider.spec,
        sleep=slept.append,
    )
    assert time.monotonic() - started < 2
    assert slept == []
    assert verdict.outcome is GateOutcome.INCONCLUSIVE
    assert "prometheus unreachable: no answer" in verdict.reason


def test_time_budget_covers_every_gate() -> None:
    check = GateCheck(
        source=source("http://127.0.0.1:9090", timeout="10s"),
        gates=[gate_from(name="a", query="up", max=1), gate_from(name="b", query="up", max=1)],
        placeholders={},
    )
    assert gates.time_budget(check).total_seconds() == 2 * 10 + 3 * 10 + 1.0


def test_bearer_token_comes_from_the_named_variable(
    prometheus_proxy: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLOUT_PLAN_SECRETS", "PROM_*")
    monkeypatch.setenv("PROM_TOKEN", "s3cret-token")
    provider = provider_for(source(prometheus_proxy.url, bearer_token_env="PROM_TOKEN"))
    before = len(prometheus_proxy.received)
    assert provider.query('up{job="prometheus"}') == Reading(1.0)
    (request,) = prometheus_proxy.received[before:]
    assert request.headers["Authorization"] == "Bearer s3cret-token"
    assert request.path.startswith("/api/v1/query?")


def test_no_token_header_without_a_variable(prometheus_proxy: HTTPRecorder) -> None:
    before = len(prometheus_proxy.received)
    provider_for(source(prometheus_proxy.url)).query("vector(1)")
    (request,) = prometheus_proxy.received[before:]
    assert "Authorization" not in request.headers


def test_a_proxy_named_in_the_environment_carries_the_queries(
    prometheus_proxy: HTTPRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment is read once, when the provider is made, not again for each query.
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, prometheus_proxy.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    provider = provider_for(source("http://prometheus.invalid:9090"))
    before = len(prometheus_proxy.received)
    # The recording proxy cannot forward an absolute URL, so the query itself fails.
    with pytest.raises(MetricsUnavailable):
        provider.query("vector(1)")
    (request,) = prometheus_proxy.received[before:]
    assert request.path.startswith("http://prometheus.invalid:9090/api/v1/query?")


def test_unset_token_variable_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_PLAN_SECRETS", "PROM_*")
    monkeypatch.delenv("PROM_TOKEN_UNSET", raising=False)
    with pytest.raises(MetricsRefused, match="PROM_TOKEN_UNSET is not set"):
        provider_for(source("http://127.0.0.1:9090", bearer_token_env="PROM_TOKEN_UNSET"))


def test_gate_sees_the_weight_the_router_set(
    haproxy: HAProxy, provider: PrometheusProvider
) -> None:
    """Router -> HAProxy -> its exporter -> Prometheus -> gate, with placeholders filled in."""
    router = router_for(HAProxyRouter(runtime_api=haproxy.unix_api, backend="app"))
    router.set_split("stable", "canary", TrafficSplit(stable_weight=58, canary_weight=42))
    gate = gate_from(
        name="canary-weight",
        query='max(haproxy_server_weight{proxy="app",server="$canary"})',
        min=42,
        max=42,
    )
    deadline = time.monotonic() + 10
    while True:
        (verdict,) = gates.evaluate([gate], provider, {"canary": "canary"}, source=provider.spec)
        if verdict.outcome is GateOutcome.PASS or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    router.set_split("stable", "canary", TrafficSplit(stable_weight=100, canary_weight=0))
    assert verdict.outcome is GateOutcome.PASS, verdict.explain()
    assert verdict.value == 42
    assert verdict.query == 'max(haproxy_server_weight{proxy="app",server="canary"})'


def test_missing_placeholder_is_inconclusive(provider: PrometheusProvider) -> None:
    gate = gate_from(name="canary-up", query='up{job="$canary"}', max=1)
    (verdict,) = gates.evaluate([gate], provider, {"service": "shop"}, source=provider.spec)
    assert verdict.outcome is GateOutcome.INCONCLUSIVE
    assert verdict.reason == "placeholder $canary has no value"
    assert verdict.query == 'up{job="$canary"}'


def test_a_netrc_login_for_the_host_is_sent_without_a_token(
    prometheus_proxy: HTTPRecorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    logins = tmp_path / "netrc"
    logins.write_text("machine 127.0.0.1 login reader password s3cret\n")
    logins.chmod(0o600)
    monkeypatch.setenv("NETRC", str(logins))
    provider = provider_for(source(prometheus_proxy.url))
    before = len(prometheus_proxy.received)
    assert provider.query('up{job="prometheus"}') == Reading(1.0)
    (request,) = prometheus_proxy.received[before:]
    assert (
        request.headers["Authorization"] == "Basic " + base64.b64encode(b"reader:s3cret").decode()
    )
