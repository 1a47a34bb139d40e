"""The PromQL presets: metrics of HAProxy's exporter and of the demo service.

What exists for which source, honestly:

- HAProxy (its Prometheus exporter) counts responses by class per server, and reports
  response times only as an average over the last 1024 requests: error rate, success
  rate and average response time. It has no latency histogram, so no p95 or p99.
- The demo service has a request counter by code and a latency histogram, labelled
  ``version`` with the server's name: error rate, success rate, p95 and p99 latency.
- Envoy (its admin API's ``/stats/prometheus``) counts upstream requests by response class
  and keeps a latency histogram in milliseconds, per cluster: error rate and p95 latency.
  It creates a class's series at its first request, so no 5xx yet reads as 0.
"""

from __future__ import annotations

from plans.presets import Preset

_HAPROXY = 'haproxy_server_http_responses_total{proxy="$backend",server="$target"'
_DEMO = 'demo_requests_total{version="$target"'
_DEMO_BUCKETS = 'demo_request_duration_seconds_bucket{version="$target"}[$window]'


def _ratio(selector: str, bad: str, good: str) -> tuple[str, str]:
    total = f"sum(rate({selector}}}[$window]))"
    return f"sum(rate({selector},{bad}}}[$window])) / {total}", (
        f"sum(rate({selector},{good}}}[$window])) / {total}"
    )


_HAPROXY_ERRORS, _HAPROXY_SUCCESS = _ratio(_HAPROXY, 'code="5xx"', 'code!="5xx"')
_DEMO_ERRORS, _DEMO_SUCCESS = _ratio(_DEMO, 'code=~"5.."', 'code!~"5.."')
_HAPROXY_COUNT = f"sum(increase({_HAPROXY}}}[$window]))"
_DEMO_COUNT = f"sum(increase({_DEMO}}}[$window]))"
_DEMO_LATENCY_COUNT = (
    'sum(increase(demo_request_duration_seconds_count{version="$target"}[$window]))'
)

# Error-rate defaults: the relative rule is "canary <= stable x1.5 + 0.1 percentage point";
# the statistical one fails at 98% confidence that the canary exceeds stable x1.2 + 0.05
# pp over a 2-minute window. benchmarks/judge_quality.py measured these settings.
_ERRORS = {
    "threshold": {"max": 0.05},
    "relative": {"factor": 1.5, "margin": 0.001},
    "statistical": {"factor": 1.2, "margin": 0.0005},
}
_SUCCESS = {
    "threshold": {"min": 0.95},
    "relative": {"factor": 1.0, "margin": 0.005},
    "statistical": {"factor": 1.0, "margin": 0.002},
}


# Sequential defaults (kind: sequential), tested on everything since the stage began and
# valid at every look. Two deployments of one build differ a little on their own (hosts,
# caches: a few percent of latency, about a tenth of the error rate), so the allowance sits
# above that (latency +7%, errors x1.15 + 0.05 point, x1.2 at a 1% error rate: about twice
# those differences); benchmarks/judge_quality.py measured these settings.
_SEQUENTIAL_ERRORS = {"test": "rate", "factor": 1.15, "margin": 0.0005, "window": "2m"}
_SEQUENTIAL_SUCCESS = {"test": "rate", "factor": 1.0, "margin": 0.002, "window": "2m"}


def _sequential_latency(buckets: str) -> dict[str, object]:
    return {
        "test": "latency",
        "query": f"sum by (le) (increase({buckets}))",
        "factor": 1.07,
        "margin": 0.0,
        "window": "2m",
    }


def _latency(max_s: float) -> dict[str, dict[str, float]]:
    return {
        "threshold": {"max": max_s},
        "relative": {"factor": 1.2, "margin": 0.01},
        "statistical": {"factor": 1.05, "margin": 0.0},
    }


_ENVOY = 'envoy_cluster_upstream_rq_xx{envoy_cluster_name="$target"'
_ENVOY_ERRORS = (
    f'(sum(rate({_ENVOY},envoy_response_code_class="5"}}[$window])) or vector(0))'
    f" / sum(rate({_ENVOY}}}[$window]))"
)
_ENVOY_COUNT = f"sum(increase({_ENVOY}}}[$window]))"
_ENVOY_P95 = (
    "histogram_quantile(0.95, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket"
    '{envoy_cluster_name="$target"}[$window]))) / 1000'
)


def _quantile(q: float) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({_DEMO_BUCKETS})))"


PROMETHEUS_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "haproxy-error-rate",
            "haproxy",
            "share of the server's responses that are 5xx",
            _HAPROXY_ERRORS,
            _HAPROXY_COUNT,
            "ratio",
            "increase",
            "two-proportion",
            **_ERRORS,
            sequential=_SEQUENTIAL_ERRORS,
        ),
        Preset(
            "haproxy-success-rate",
            "haproxy",
            "share of the server's responses that are not 5xx",
            _HAPROXY_SUCCESS,
            _HAPROXY_COUNT,
            "ratio",
            "decrease",
            "two-proportion",
            **_SUCCESS,
            sequential=_SEQUENTIAL_SUCCESS,
        ),
        Preset(
            "haproxy-response-time",
            "haproxy",
            "HAProxy's average response time of the server (over its last 1024 requests)",
            "avg_over_time(haproxy_server_response_time_average_seconds"
            '{proxy="$backend",server="$target"}[$window])',
            _HAPROXY_COUNT,
            "seconds",
            "increase",
            "mann-whitney",
            **_latency(0.25),
        ),
        Preset(
            "envoy-error-rate",
            "envoy",
            "share of the cluster's upstream requests answered 5xx",
            _ENVOY_ERRORS,
            _ENVOY_COUNT,
            "ratio",
            "increase",
            "two-proportion",
            **_ERRORS,
            sequential=_SEQUENTIAL_ERRORS,
        ),
        Preset(
            "envoy-p95-latency",
            "envoy",
            "95th percentile of the cluster's upstream request time (Envoy's histogram, in s)",
            _ENVOY_P95,
            _ENVOY_COUNT,
            "seconds",
            "increase",
            "mann-whitney",
            **_latency(0.25),
        ),
        Preset(
            "demo-error-rate",
            "demo",
            "share of the demo service's answers that are 5xx",
            _DEMO_ERRORS,
            _DEMO_COUNT,
            "ratio",
            "increase",
            "two-proportion",
            **_ERRORS,
            sequential=_SEQUENTIAL_ERRORS,
        ),
        Preset(
            "demo-success-rate",
            "demo",
            "share of the demo service's answers that are not 5xx",
            _DEMO_SUCCESS,
            _DEMO_COUNT,
            "ratio",
            "decrease",
            "two-proportion",
            **_SUCCESS,
            sequential=_SEQUENTIAL_SUCCESS,
        ),
        Preset(
            "demo-p95-latency",
            "demo",
            "95th percentile of the demo service's answer time (from its histogram)",
            _quantile(0.95),
            _DEMO_LATENCY_COUNT,
            "seconds",
            "increase",
            "mann-whitney",
            **_latency(0.25),
            sequential=_sequential_latency(_DEMO_BUCKETS),
        ),
        Preset(
            "demo-p99-latency",
            "demo",
            "99th percentile of the demo service's answer time (from its histogram)",
            _quantile(0.99),
            _DEMO_LATENCY_COUNT,
            "seconds",
            "increase",
            "mann-whitney",
            **_latency(0.5),
            sequential=_sequential_latency(_DEMO_BUCKETS),
        ),
    )
}
