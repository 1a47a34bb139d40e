"""Seconds from a canary starting to fail until HAProxy routes nothing to it, on the real stack.

Run ``.venv/bin/python benchmarks/detection.py`` (the command behind benchmarks/README.md's
figures: three runs); it prints one JSON object. It starts the dev stack (Temporal dev
server, HAProxy, Prometheus scraping every second, the demo service with its load, a worker)
in a temporary folder, and for each run starts a rollout whose only stage holds the canary
at 20% behind a statistical error-rate gate (HAProxy's counters, the two-proportion test
against the stable). Once the gate has passed a few checks, the canary starts failing 30% of
its requests; the clock runs until HAProxy's runtime API reports weight 0 for the canary.
The stack is stopped at the end, also on error.

The bound is what the judge can promise: a scrape interval for the errors to reach
Prometheus, ``failure_limit`` checks ``check_every`` apart, and 2 s for the activities
and the shift back.

``--quick`` measures one run, on a stack on free ports, without waiting for a previous
run's errors to leave the window (there are none) and breaking the canary once its gate
has passed: the same JSON, for the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from client.connection import end_process
from devstack.parts import LOAD_RPS
from plans import HAProxyRouter, Plan, RolloutState, parse_plan
from tests.stack.conftest import ANY_PORTS
from tests.stack_plans import stack_plan

RUNS = 3
WEIGHT = 20
FAULT_ERROR_RATE = 0.3
SCRAPE_INTERVAL_S = 1.0  # demo.configs.prometheus_config's default, used by the dev stack
CHECK_EVERY_S = 2
WINDOW_S = 15
FAILURE_LIMIT = 2
HEALTHY_CHECKS = 3
TIMEOUT_S = 60.0


def detection_plan(info: devstack.StackInfo) -> Plan:
    """One stage at 20%, judged by HAProxy's error rate against the stable's."""
    gate = {
        "name": "error-rate",
        "preset": "haproxy-error-rate",
        "kind": "statistical",
        "window": f"{WINDOW_S}s",
        "step": "3s",
        "min_samples": 50,
        "failure_limit": FAILURE_LIMIT,
        # The first checks after the shift see a window still short of canary
        # traffic: let them be inconclusive without pausing the measurement.
        "inconclusive_limit": 10,
    }
    stage = {"name": "twenty", "weight": WEIGHT, "bake": "10m", "check_every": f"{CHECK_EVERY_S}s"}
    service = f"detect-{uuid.uuid4().hex[:6]}"
    return parse_plan(stack_plan(info, service, [gate], [stage], version="faulty"))


async def one_run(
    info: devstack.StackInfo,
    client: Client,
    router: HAProxyRuntime,
    after_errors: bool = True,
    healthy_checks: int = HEALTHY_CHECKS,
) -> dict[str, Any]:
    """Start a rollout, let it pass, break the canary, time the way back to 0%."""
    directory = Path(info.dir)
    await asyncio.to_thread(devstack.fault, directory, 0.0, 0)
    if after_errors:
        # The previous run's errors must leave the gate's window before the next canary starts.
        await asyncio.sleep(WINDOW_S + 2 * SCRAPE_INTERVAL_S)
    plan = detection_plan(info)
    handle = await operations.start_rollout(client, plan, info.task_queue)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        status = await operations.status(client, plan.service)
        verdict = status.verdicts.get("error-rate")
        split = await asyncio.to_thread(router.get_split, "stable", "canary")
        passed = verdict is not None and verdict.outcome.value == "pass"
        if split.canary_weight == WEIGHT and passed and status.checks >= healthy_checks:
            break
        if status.state.final or time.monotonic() > deadline:
            raise RuntimeError(f"the healthy canary never settled: {status.state} {verdict}")
        await asyncio.sleep(0.2)
    fault_at = time.monotonic()
    await asyncio.to_thread(devstack.fault, directory, FAULT_ERROR_RATE, 0)
    while True:
        split = await asyncio.to_thread(router.get_split, "stable", "canary")
        if split.canary_weight == 0:
            restored_at = time.monotonic()
            break
        if time.monotonic() > fault_at + TIMEOUT_S:
            raise RuntimeError("HAProxy still routes to the faulty canary after a minute")
        await asyncio.sleep(0.05)
    await asyncio.to_thread(devstack.fault, directory, 0.0, 0)
    reason = ""
    try:
        await asyncio.wait_for(handle.result(), timeout=TIMEOUT_S)
    except WorkflowFailureError as error:
        reason = str(getattr(error.cause, "message", error.cause))
    final = await operations.status(client, plan.service)
    return {
        "fault_to_restore_s": round(restored_at - fault_at, 2),
        "state": final.state.value,
        "rolled_back": final.state == RolloutState.ROLLED_BACK,
        "reason": reason,
    }


async def measure(info: devstack.StackInfo, quick: bool = False) -> dict[str, Any]:
    client = await Client.connect(
        info.temporal_address, namespace=info.namespace, data_converter=pydantic_data_converter
    )
    router = HAProxyRuntime(
        HAProxyRouter(runtime_api=f"unix://{info.haproxy_socket}", backend=info.haproxy_backend)
    )
    if quick:
        runs = [await one_run(info, client, router, after_errors=False, healthy_checks=1)]
    else:
        runs = [await one_run(info, client, router) for _ in range(RUNS)]
    times = [run["fault_to_restore_s"] for run in runs]
    bound = SCRAPE_INTERVAL_S + CHECK_EVERY_S * FAILURE_LIMIT + 2
    return {
        "fault_to_restore_s": max(times),
        "median_fault_to_restore_s": statistics.median(times),
        "bound_s": bound,
        "within_bound": max(times) <= bound,
        "settings": {
            "canary_weight": WEIGHT,
            "fault_error_rate": FAULT_ERROR_RATE,
            "scrape_interval_s": SCRAPE_INTERVAL_S,
            "check_every_s": CHECK_EVERY_S,
            "failure_limit": FAILURE_LIMIT,
            "gate": "haproxy-error-rate, statistical (two-proportion, <= stable x1.2+0.05%,"
            f" 98%), window {WINDOW_S}s in 3s steps",
            "load_rps": LOAD_RPS,
        },
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run, on free ports")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="rollout-detect-"))
    ports = ANY_PORTS if args.quick else None
    # The stack stops with the benchmark, also on SIGTERM (`timeout`) or Ctrl-C.
    with devstack.running(directory, with_worker=True, ports=ports) as info:
        report = asyncio.run(measure(info, args.quick))
    shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps(report, indent=1))
    # The SDK's native threads must not outlive a finalizing interpreter.
    end_process(0)


if __name__ == "__main__":
    main()
