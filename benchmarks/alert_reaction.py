"""How fast an alert rolls a rollout back, on the real dev stack with --alerts; prints JSON.

Each run starts a rollout at canary 20%, waits until it bakes, then POSTs an
Alertmanager-shaped notification (payload version 4, a critical alert for the service that
started after the stage) to the stack's receiver (`rollout alerts serve`), as Alertmanager
would, and times from sending it until HAProxy's admin API reports canary weight 0 (polled
every 5 ms). The receiver asks the rollout's status, sends the rollback as ``alertmanager``
through the CLI's path (an update), and the workflow restores the split.

    .venv/bin/python benchmarks/alert_reaction.py [--runs 20] [--dir DIR]

Goal: p95 <= 500 ms. benchmarks/README.md's table comes from ``.venv/bin/python
benchmarks/alert_reaction.py --runs 20``. ``--quick`` measures one run without a warm-up,
on a stack on free ports: the same JSON, for the tests, not for the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

import devstack
from activities.routers.haproxy import HAProxyRuntime
from benchmarks.reaction import CanaryWatch, ended, machine, plan_for, summary, wait_status
from client import operations
from client.connection import end_process
from plans import HAProxyRouter, RolloutState
from tests.stack.conftest import ANY_PORTS

GOAL = {"p95_ms": 500.0}


def notification(service: str, starts_at: str) -> dict[str, Any]:
    """What Alertmanager posts for one critical alert about ``service``."""
    labels = {"alertname": "CanaryErrorRateHigh", "severity": "critical", "service": service}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="CanaryErrorRateHigh"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "rollouts",
        "groupLabels": {"alertname": "CanaryErrorRateHigh", "service": service},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "canary error rate 40% (benchmark)"},
                "startsAt": starts_at,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": uuid.uuid4().hex[:16],
            }
        ],
    }


async def one_run(
    client: Client,
    http: httpx.AsyncClient,
    stack: devstack.StackInfo,
    runtime: HAProxyRuntime,
    token: str,
) -> dict[str, float]:
    service = f"alert-{uuid.uuid4().hex[:8]}"
    handle = await operations.start_rollout(client, plan_for(stack, service), stack.task_queue)
    await wait_status(
        client,
        service,
        lambda s: s.state == RolloutState.BAKING and s.stage_started_at is not None,
    )
    status = await operations.status(client, service)
    assert status.stage_started_at is not None
    starts_at = (status.stage_started_at + timedelta(milliseconds=1)).isoformat()
    body = json.dumps(notification(service, starts_at)).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert stack.alerts_url is not None

    watch = CanaryWatch(runtime, 0)
    sent = time.perf_counter()
    response = await http.post(stack.alerts_url, content=body, headers=headers)
    answered = time.perf_counter()
    outcome = response.json()["alerts"][0]["outcome"] if response.status_code == 200 else None
    if outcome != "sent":
        raise RuntimeError(f"the receiver answered {response.status_code}: {response.text}")
    restored = await asyncio.to_thread(watch.wait, 30.0)
    await ended(handle)
    return {"alert_rollback": (restored - sent) * 1000, "receiver_answer": (answered - sent) * 1000}


async def measure(stack: devstack.StackInfo, runs: int, warm_up: bool = True) -> dict[str, Any]:
    client = await Client.connect(
        stack.temporal_address, namespace=stack.namespace, data_converter=pydantic_data_converter
    )
    runtime = HAProxyRuntime(
        HAProxyRouter(runtime_api=stack.haproxy_admin_tcp, backend=stack.haproxy_backend)
    )
    token = stack.alert_token_file.read_text().strip()
    samples: dict[str, list[float]] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        if warm_up:
            await one_run(client, http, stack, runtime, token)
        for _ in range(runs):
            for key, value in (await one_run(client, http, stack, runtime, token)).items():
                samples.setdefault(key, []).append(value)
    result: dict[str, Any] = {"runs": runs}
    result |= summary("alert_rollback", samples["alert_rollback"])
    result |= summary("receiver_answer", samples["receiver_answer"])
    result["goal"] = {
        "alert_rollback_p95_ms": GOAL["p95_ms"],
        "met": result["alert_rollback_p95_ms"] <= GOAL["p95_ms"],
    }
    result["poll_ms"] = 5.0
    result["machine"] = machine()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--dir", help="an existing dev stack's folder, started with --alerts (default: a fresh one)"
    )
    parser.add_argument("--quick", action="store_true", help="one run, no warm-up, free ports")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    own = args.dir is None
    directory = Path(args.dir or tempfile.mkdtemp(prefix="alert-reaction-"))
    # A stack of its own stops with it, also on SIGTERM (`timeout`) or Ctrl-C.
    with contextlib.ExitStack() as cleanup:
        if own:
            cleanup.callback(shutil.rmtree, directory, ignore_errors=True)
            ports = ANY_PORTS if args.quick else None
            stack = cleanup.enter_context(devstack.running(directory, alerts=True, ports=ports))
        else:
            stack = devstack.load(directory)
            if stack.alerts_url is None:
                parser.error(f"the stack in {directory} runs without --alerts")
        result = asyncio.run(measure(stack, args.runs, warm_up=not args.quick))
    print(json.dumps(result, indent=2))
    # The SDK's native threads must not outlive a finalizing interpreter.
    end_process(0)


if __name__ == "__main__":
    main()
