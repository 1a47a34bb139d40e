"""How fast `rollout rollback` of a release reaches every target's router; prints JSON.

On a dev stack of its own with a fleet (``rollout dev up --targets ...``), for 4 and for 12
targets (12 share the demo services, four pairs): a release puts every target in one wave
at 20% canary; then the clock runs from sending the release's rollback (the update the CLI
sends) until every target's HAProxy backend reports canary weight 0, read by a separate
poller through the runtime API every 5 ms. Repeated ``--rounds`` times per count. The
stack's load generators are stopped first: no gate is judged, and they would only take
CPU from the worker.

    .venv/bin/python benchmarks/fleet.py [--rounds 7] [--counts 4,12]

Goal: p95 <= 1 s for 12 targets. The last line is one JSON object. benchmarks/README.md's
table comes from ``.venv/bin/python benchmarks/fleet.py`` (the defaults). ``--quick``
measures one round for 2 targets without a warm-up, on a stack on free ports: the same
JSON, for the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import releases
from client.connection import end_process
from devstack.fleet import FleetStack, fleet_plan, load_fleet
from devstack.processes import stop_all
from plans import CommandKind, HAProxyRouter, OperatorCommand, TrafficSplit
from plans.release_plan import parse_release_plan
from plans.runtime.release import ReleaseCommand
from tests.stack.conftest import ANY_PORTS

POLL_S = 0.005
GOAL_P95_MS = 1000.0
NAMES = [
    "staging", "eu", "us-west", "us-east", "ap-south", "ap-east",
    "sa-east", "ca-central", "eu-north", "me-south", "af-south", "ap-north",
]  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


def routers(fleet: FleetStack) -> list[HAProxyRuntime]:
    return [
        HAProxyRuntime(HAProxyRouter(runtime_api=fleet.haproxy_admin_tcp, backend=name))
        for name in fleet.targets
    ]


def canary_weights(runtimes: list[HAProxyRuntime]) -> list[int]:
    return [r.get_split("stable", "canary").canary_weight for r in runtimes]


async def one_round(client: Client, fleet: FleetStack, queue: str) -> float:
    """Milliseconds from the rollback update until every backend reports canary 0."""
    runtimes = routers(fleet)
    for runtime in runtimes:
        runtime.set_split("stable", "canary", TrafficSplit.canary_percent(0))
    data = fleet_plan(fleet)
    data["waves"] = [{"targets": list(fleet.targets)}]
    data["stages"] = [{"name": "hold", "weight": 20, "bake": "10m", "check_every": "5m"}]
    data["gates"] = []
    plan = parse_release_plan(data)
    handle = await releases.start_release(client, plan, queue)
    deadline = time.monotonic() + 120
    while await asyncio.to_thread(canary_weights, runtimes) != [20] * len(runtimes):
        if time.monotonic() > deadline:
            raise RuntimeError("the targets never all reached 20%")
        await asyncio.sleep(0.05)
    # The shifts are done (each read its split back); let each rollout record it.
    await asyncio.sleep(1.0)
    command = ReleaseCommand(command=OperatorCommand(kind=CommandKind.ROLLBACK, by="bench"))
    started = time.perf_counter()
    sending = asyncio.create_task(releases.send_release_command(client, plan.service, command))
    # A backend seen at 0 is not asked again: fewer reads compete with the rollbacks.
    left = list(runtimes)
    while left:
        weights = await asyncio.to_thread(canary_weights, left)
        left = [r for r, weight in zip(left, weights, strict=True) if weight]
        await asyncio.sleep(POLL_S)
    elapsed = (time.perf_counter() - started) * 1000
    await sending
    with contextlib.suppress(WorkflowFailureError):  # a rolled-back release ends failed
        await handle.result()
    return elapsed


async def measure(count: int, rounds: int, quick: bool = False) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    ports = ANY_PORTS if quick else None
    try:
        with devstack.running(
            directory, with_worker=True, targets=NAMES[:count], ports=ports
        ) as info:
            fleet = load_fleet(directory)
            # No gates are judged here: the load would only take CPU from the measurement.
            stop_all({n: p for n, p in info.pids.items() if "loadgen" in n})
            client = await Client.connect(
                info.temporal_address,
                namespace=info.namespace,
                data_converter=pydantic_data_converter,
            )
            if not quick:
                await one_round(client, fleet, info.task_queue)  # warm-up: caches, connections
            samples = [await one_round(client, fleet, info.task_queue) for _ in range(rounds)]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "targets": count,
        "rounds": rounds,
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "max_ms": round(max(samples), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--counts", default="4,12")
    parser.add_argument(
        "--quick", action="store_true", help="2 targets, one round, no warm-up, free ports"
    )
    args = parser.parse_args()
    if args.quick:
        args.counts, args.rounds = "2", 1
    counts = [int(c) for c in args.counts.split(",")]
    if any(not 1 <= c <= len(NAMES) for c in counts):
        parser.error(f"--counts: each from 1 to {len(NAMES)}")
    results = []
    for count in counts:
        result = asyncio.run(measure(count, args.rounds, args.quick))
        print(f"{count} targets: {json.dumps(result)}", file=sys.stderr)
        results.append(result)
    largest = max(results, key=lambda r: r["targets"])
    summary = {
        "rollback_to_every_backend_at_stable": results,
        "goal_p95_ms": GOAL_P95_MS,
        "goal_met": largest["p95_ms"] <= GOAL_P95_MS,
    }
    print(json.dumps(summary))
    # The SDK's native threads must not outlive a finalizing interpreter.
    end_process(0)


if __name__ == "__main__":
    main()
