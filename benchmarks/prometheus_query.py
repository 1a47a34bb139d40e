"""What one Prometheus instant query costs the worker's thread; prints one JSON object.

Starts a real Prometheus on a free loopback port (scraping itself every second), then runs
the same instant query ``--times`` times through each client and reports the CPU time of
the calling thread per query (``time.thread_time``, which leaves out the wait for the
answer) and the wall time:

- ``provider``: the worker's ``PrometheusProvider`` (an httpcore pool, ``activities.outbound``);
- ``requests_session``: a bare ``requests.Session.get`` of the same URL, the transport
  prometheus-api-client is built on (its one transport setting is such a session), set
  not to read the environment again for each request;
- ``prometheus_api_client``: ``PrometheusConnect.custom_query``, when that package is
  installed (``pip install prometheus-api-client``; the project no longer depends on it).

    .venv/bin/python benchmarks/prometheus_query.py [--times 2000]

benchmarks/README.md's figures come from ``.venv/bin/python benchmarks/prometheus_query.py`` (the
default 2,000 queries), with prometheus-api-client installed for its row. ``--quick`` asks
20 times: the same JSON in a few seconds, for the tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUERY = (
    'sum(rate(prometheus_http_requests_total{code="200"}[1m]))'
    " / sum(rate(prometheus_http_requests_total[1m]))"
)


def start_prometheus(folder: Path) -> tuple[int, str]:
    from devstack.processes import LOCALHOST, free_port, http_ok, spawn, wait_ready

    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    port = free_port()
    config = folder / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: prometheus\n"
        f"    static_configs: [{{targets: ['{LOCALHOST}:{port}']}}]\n"
    )
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={LOCALHOST}:{port}",
        "--log.level=warn",
    ]
    log = folder / "prometheus.log"
    pid = spawn(argv, log)
    url = f"http://{LOCALHOST}:{port}"
    wait_ready("prometheus", pid, log, lambda: http_ok(url + "/-/ready"))
    return pid, url


def clients(url: str) -> dict[str, Callable[[], Any]]:
    import requests

    from activities.metrics.prometheus import PrometheusProvider
    from plans import PrometheusSource

    provider = PrometheusProvider(PrometheusSource.model_validate({"url": url}))

    def configured() -> requests.Session:
        # The best configuration found for it: the environment (proxies, .netrc, CA
        # bundle) read once, not again for each request.
        session = requests.Session()
        session.trust_env = False
        return session

    session = configured()

    def requests_session() -> Any:
        answer = session.get(url + "/api/v1/query", params={"query": QUERY}, timeout=10)
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    found: dict[str, Callable[[], Any]] = {
        "provider": lambda: provider.query(QUERY),
        "requests_session": requests_session,
    }
    try:
        from prometheus_api_client.prometheus_connect import PrometheusConnect
    except ImportError:
        return found
    connect = PrometheusConnect(url=url, session=configured())
    found["prometheus_api_client"] = lambda: connect.custom_query(QUERY)
    return found


def cost(call: Callable[[], Any], times: int) -> dict[str, float]:
    for _ in range(20):
        call()
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(times):
        call()
    return {
        "cpu_ms_per_query": round(1000 * (time.thread_time() - cpu) / times, 3),
        "wall_ms_per_query": round(1000 * (time.perf_counter() - wall) / times, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="--times 20")
    args = parser.parse_args()
    if args.quick:
        args.times = 20
    sys.path.insert(0, str(ROOT))
    from devstack.processes import signals_interrupt, stop_all

    with signals_interrupt(), tempfile.TemporaryDirectory(prefix="prom-query-") as tmp:
        pid, url = start_prometheus(Path(tmp))
        try:
            time.sleep(2.5)  # a few scrapes, so the query has data to compute
            results: dict[str, Any] = {}
            # Each client twice, interleaved, so a change in the machine's load shows.
            for _ in (1, 2):
                for name, call in clients(url).items():
                    results.setdefault(name, []).append(cost(call, args.times))
        finally:
            stop_all({"prometheus": pid})
    summary = {
        name: {
            "cpu_ms_per_query": min(r["cpu_ms_per_query"] for r in runs),
            "wall_ms_per_query": min(r["wall_ms_per_query"] for r in runs),
            "runs": runs,
        }
        for name, runs in results.items()
    }
    print(json.dumps({"query": QUERY, "times": args.times, "clients": summary}))


if __name__ == "__main__":
    main()
