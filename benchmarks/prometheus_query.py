"""What one Prometheus instant query costs the worker's thread; prints one JSON object.

Starts a real Prometheus on a free loopback port (scraping itself every second), then runs
the same instant query ``--times`` times through each client and reports the CPU time of
the calling thread per query (``time.thread_time``, which leaves out the wait for the
answer) and the wall time:

- ``provider``: the worker's ``PrometheusProvider`` (an httpcore pool, ``activities.outbound``),
  what every check asks through;
- ``httpx_client``: a bare ``httpx.Client.get`` of the same URL (httpx is a dependency
  already; it is built on httpcore);
- ``urllib3_pool``: a bare ``urllib3.HTTPConnectionPool.request`` (what requests is built on);
- ``requests_session``: a bare ``requests.Session.get``, the transport prometheus-api-client
  is built on (its one transport setting is such a session);
- ``prometheus_api_client``: ``PrometheusConnect.custom_query``, the client the report's
  range queries use (``activities.metrics.ranges``).

Each bare client is set not to read the environment (proxies, ``.netrc``) again for each
request, the best configuration found for it.

    .venv/bin/python benchmarks/prometheus_query.py [--times 2000]

benchmarks/README.md's figures come from ``.venv/bin/python benchmarks/prometheus_query.py`` (the
default 2,000 queries). ``--quick`` asks 20 times: the same JSON in a few seconds, for the
tests.
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
    import httpx
    import requests
    import urllib3
    from prometheus_api_client.prometheus_connect import PrometheusConnect

    from activities.metrics.prometheus import PrometheusProvider
    from plans import PrometheusSource

    provider = PrometheusProvider(PrometheusSource.model_validate({"url": url}))
    params = {"query": QUERY}

    def configured() -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        return session

    session = configured()

    def requests_session() -> Any:
        answer = session.get(url + "/api/v1/query", params=params, timeout=10)
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    client = httpx.Client(base_url=url, trust_env=False, timeout=10)

    def httpx_client() -> Any:
        answer = client.get("/api/v1/query", params=params)
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    pool = urllib3.connection_from_url(url, maxsize=4, timeout=10.0, retries=False)

    def urllib3_pool() -> Any:
        answer = pool.request("GET", "/api/v1/query", fields=params)
        if answer.status != 200:
            raise RuntimeError(f"HTTP {answer.status}")
        return json.loads(answer.data)["data"]["result"]

    connect = PrometheusConnect(url=url, session=configured())
    return {
        "provider": lambda: provider.query(QUERY),
        "httpx_client": httpx_client,
        "urllib3_pool": urllib3_pool,
        "requests_session": requests_session,
        "prometheus_api_client": lambda: connect.custom_query(QUERY),
    }


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
