"""Relative, statistical and sequential gates against a real Prometheus scraping demo services.

A stable, a healthy canary and a faulty canary (30% errors, 30 ms slower) run in threads
under steady load; Prometheus scrapes them every second. The same gates must pass the
healthy canary and fail the faulty one, reading both versions through ``$target``.
"""

from __future__ import annotations

import http.client
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from activities import gates
from activities.metrics import PrometheusProvider
from demo.service import DemoServer, Fault
from plans import GateOutcome, PrometheusSource, Verdict, gate_from
from tests.activities.conftest import PROMETHEUS, free_port, stop, wait_for

VERSIONS = {"stable": Fault(), "canary": Fault(), "canary-bad": Fault(0.3, 30)}
GATES = [
    gate_from(g | {"min_samples": 20})
    for g in (
        {"name": "errors", "preset": "demo-error-rate", "kind": "relative", "window": "5s"},
        {"name": "p95", "preset": "demo-p95-latency", "kind": "relative", "window": "5s"},
        {
            "name": "errors-test",
            "preset": "demo-error-rate",
            "kind": "statistical",
            "window": "8s",
            "step": "2s",
        },
        {
            "name": "p95-test",
            "preset": "demo-p95-latency",
            "kind": "statistical",
            "window": "8s",
            "step": "2s",
        },
        # Sequential gates read from the stage's start; without one, their window.
        {"name": "errors-seq", "preset": "demo-error-rate", "kind": "sequential", "window": "8s"},
        {"name": "latency-seq", "preset": "demo-p95-latency", "kind": "sequential", "window": "8s"},
    )
]


@dataclass
class Demo:
    prometheus_url: str


def _load(port: int, stop_event: threading.Event) -> None:
    """About 60 requests a second on one kept-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    while not stop_event.is_set():
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
        except OSError:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        stop_event.wait(1 / 60)
    connection.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    if not Path(PROMETHEUS).exists():
        pytest.skip(f"Prometheus is not installed at {PROMETHEUS}")
    servers = {v: DemoServer(("127.0.0.1", 0), v, fault) for v, fault in VERSIONS.items()}
    stop_event = threading.Event()
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,)) for s in servers.values()]
    threads += [
        threading.Thread(target=_load, args=(s.server_address[1], stop_event))
        for s in servers.values()
    ]
    for thread in threads:
        thread.start()
    tmp = tmp_path_factory.mktemp("judge-prometheus")
    port = free_port()
    targets = ", ".join(f'"127.0.0.1:{s.server_address[1]}"' for s in servers.values())
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: demo\n    static_configs: [{{targets: [{targets}]}}]\n"
    )
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                return bool(answer.status == 200)

        wait_for("prometheus", ready, 15, log)
        yield Demo(prometheus_url=url)
    finally:
        stop(proc)
        stop_event.set()
        for server in servers.values():
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)


def judged_until(demo: Demo, canary: str, want: GateOutcome) -> dict[str, Verdict]:
    """Check the gates until each one gives ``want`` (data fills the windows first)."""
    provider = PrometheusProvider(PrometheusSource(url=demo.prometheus_url))
    values = {"canary": canary, "stable": "stable", "service": "demo"}
    deadline = time.monotonic() + 25
    try:
        while True:
            verdicts = {
                v.gate: v for v in gates.evaluate(GATES, provider, values, source=provider.spec)
            }
            if all(v.outcome is want for v in verdicts.values()) or time.monotonic() > deadline:
                return verdicts
            time.sleep(0.5)
    finally:
        provider.close()


def explain(verdicts: dict[str, Verdict]) -> Any:
    return [v.explain() for v in verdicts.values()]


def test_a_healthy_canary_passes_every_kind(demo: Demo) -> None:
    verdicts = judged_until(demo, "canary", GateOutcome.PASS)
    assert all(v.outcome is GateOutcome.PASS for v in verdicts.values()), explain(verdicts)
    errors = verdicts["errors"]
    assert errors.canary == 0 and errors.stable == 0
    assert errors.canary_samples is not None and errors.canary_samples >= 20
    assert 'version="canary"' in errors.query


def test_a_faulty_canary_fails_every_kind(demo: Demo) -> None:
    verdicts = judged_until(demo, "canary-bad", GateOutcome.FAIL)
    assert all(v.outcome is GateOutcome.FAIL for v in verdicts.values()), explain(verdicts)
    errors = verdicts["errors"]
    assert errors.canary is not None and 0.1 < errors.canary < 0.5
    assert errors.stable == 0
    assert errors.reason.startswith("canary ") and "vs stable 0%" in errors.reason
    assert verdicts["errors-test"].p_value is not None
    assert verdicts["errors-test"].p_value < 0.02
    assert verdicts["p95-test"].canary is not None and verdicts["p95-test"].canary > 0.025
    # The sequential latency gate read the histogram's buckets by le, both versions.
    slower = verdicts["latency-seq"]
    assert slower.effect is not None and slower.effect > 1.06
    assert "bucket bound(s)" in slower.reason


def test_live_traffic_and_evidence_read_from_prometheus(demo: Demo) -> None:
    """`validate --live` reads each gate's traffic, rate and buckets; verdicts carry evidence."""
    from activities import power_plan
    from plans import parse_plan

    verdicts = judged_until(demo, "canary", GateOutcome.PASS)
    latency = verdicts["latency-seq"]
    assert latency.evidence is not None and latency.evidence >= 20
    assert latency.evidence_needed is not None and latency.evidence_target is not None
    assert latency.evidence_target > 1
    assert verdicts["errors-seq"].evidence is not None and verdicts["errors-seq"].evidence >= 20
    plan = parse_plan(
        {
            "service": "demo",
            "stable": "stable",
            "canary": "canary",
            "router": {"kind": "haproxy", "runtime_api": "tcp://127.0.0.1:9999", "backend": "b"},
            "metrics": {"kind": "prometheus", "url": demo.prometheus_url},
            "gates": [
                {"name": "errors", "preset": "demo-error-rate", "kind": "sequential"},
                {"name": "latency", "preset": "demo-p95-latency", "kind": "sequential"},
            ],
            "stages": [{"name": "five", "weight": 5, "bake": "10m"}],
        }
    )
    traffic = power_plan.live(plan, 0.01)
    assert not traffic.problems, traffic.problems
    assert traffic.total_rps["errors"] > 0 and traffic.total_rps["latency"] > 0
    bounds, shares = traffic.latency["latency"]
    assert len(bounds) == len(shares) >= 3 and sum(shares) > 0
    (stage,) = power_plan.reach(plan, traffic)
    found = {g.gate: g for g in stage}
    assert found["latency"].detectable is not None and found["latency"].detectable > 1
    assert found["latency"].canary_requests == pytest.approx(
        traffic.total_rps["latency"] * 0.05 * 600
    )
