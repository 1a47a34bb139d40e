"""How fast a rollout reacts to an operator, on the real dev stack; prints one JSON object.

Each run starts a rollout at canary 20%, waits until it bakes, then:

- pause through the `rollout` CLI's path (``operations.send_command``, an update): time from
  sending until the status query says ``paused``;
- resume, then rollback the same way: time from sending until HAProxy's admin socket reports
  canary weight 0 (polled every 5 ms);
- on a second rollout, rollback with ``temporal workflow signal`` (a new CLI process, as an
  operator would type it): time from launching the CLI until canary weight 0.

    .venv/bin/python benchmarks/reaction.py [--runs 20] [--dir DIR]

Goal: rollback p50 <= 150 ms, p95 <= 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.routers.haproxy import HAProxyRuntime
from plans import (
    CommandKind,
    HAProxyRouter,
    OperatorCommand,
    Plan,
    RolloutState,
    parse_plan,
)
from starter import devstack, operations
from tests.stack_plans import error_rate_plan

TEMPORAL = str(Path(sys.executable).parent / "temporal")
POLL_S = 0.005
GOAL = {"rollback_p50_ms": 150.0, "rollback_p95_ms": 500.0}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


def summary(name: str, values: list[float]) -> dict[str, float]:
    return {
        f"{name}_p50_ms": percentile(values, 50),
        f"{name}_p95_ms": percentile(values, 95),
        f"{name}_max_ms": round(max(values), 1),
    }


def plan_for(stack: devstack.StackInfo, service: str) -> Plan:
    stages = [{"name": "twenty", "weight": 20, "bake": "10m", "check_every": "30s"}]
    return parse_plan(error_rate_plan(stack, service, stages, window="30s"))


class CanaryWatch:
    """A thread that polls HAProxy's canary weight every 5 ms and notes when it hits a value."""

    def __init__(self, runtime: HAProxyRuntime, target: int) -> None:
        self.runtime = runtime
        self.target = target
        self.reached_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.runtime.get_weight("canary") == self.target:
                self.reached_at = time.perf_counter()
                return
            time.sleep(POLL_S)

    def wait(self, timeout: float) -> float:
        self._thread.join(timeout)
        self._stop.set()
        if self.reached_at is None:
            raise RuntimeError(f"canary weight never reached {self.target} in {timeout:g}s")
        return self.reached_at


async def wait_status(
    client: Client, service: str, done: Callable[[Any], bool], timeout: float = 30.0
) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        status = await operations.status(client, service)
        if done(status):
            return time.perf_counter()
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"{service} did not reach the expected state in {timeout:g}s")


async def started(
    client: Client, stack: devstack.StackInfo
) -> tuple[str, WorkflowHandle[Any, Any]]:
    service = f"reaction-{uuid.uuid4().hex[:8]}"
    handle = await operations.start_rollout(client, plan_for(stack, service), stack.task_queue)
    await wait_status(client, service, lambda s: s.state == RolloutState.BAKING)
    return service, handle


async def ended(handle: WorkflowHandle[Any, Any]) -> None:
    # A rollback ends the run as failed: that is the expected end here.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(handle.result(), timeout=30)


async def one_run(
    client: Client, stack: devstack.StackInfo, runtime: HAProxyRuntime
) -> dict[str, float]:
    service, handle = await started(client, stack)
    command = OperatorCommand(kind=CommandKind.PAUSE, by="bench", reason="pause")

    sent = time.perf_counter()
    await operations.send_command(client, service, command)
    acked = time.perf_counter()
    paused = await wait_status(client, service, lambda s: s.state == RolloutState.PAUSED)
    resume = command.model_copy(update={"kind": CommandKind.RESUME})
    await operations.send_command(client, service, resume)
    await wait_status(client, service, lambda s: s.state == RolloutState.BAKING)

    watch = CanaryWatch(runtime, 0)
    rollback = command.model_copy(update={"kind": CommandKind.ROLLBACK, "reason": "bench"})
    rollback_sent = time.perf_counter()
    await operations.send_command(client, service, rollback)
    rollback_acked = time.perf_counter()
    restored = await asyncio.to_thread(watch.wait, 30.0)
    await ended(handle)

    service, handle = await started(client, stack)
    watch = CanaryWatch(runtime, 0)
    launched = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        TEMPORAL, "workflow", "signal", "--address", stack.temporal_address,
        "--namespace", stack.namespace, "--workflow-id", operations.workflow_id(service),
        "--name", "rollback", "--input", '{"by": "bench", "reason": "cli"}',
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, error = await process.communicate()
    cli_exited = time.perf_counter()
    if process.returncode != 0:
        raise RuntimeError(f"temporal workflow signal failed: {error.decode()}")
    cli_restored = await asyncio.to_thread(watch.wait, 30.0)
    await ended(handle)
    return {
        "pause": (paused - sent) * 1000,
        "pause_ack": (acked - sent) * 1000,
        "rollback": (restored - rollback_sent) * 1000,
        "rollback_ack": (rollback_acked - rollback_sent) * 1000,
        "cli_signal_rollback": (cli_restored - launched) * 1000,
        "cli_signal_exit": (cli_exited - launched) * 1000,
    }


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        memory_gb = None
    version = subprocess.run([TEMPORAL, "--version"], capture_output=True, text=True).stdout
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "temporal_cli": version.strip(),
    }


async def measure(stack: devstack.StackInfo, runs: int) -> dict[str, Any]:
    client = await Client.connect(
        stack.temporal_address, namespace=stack.namespace, data_converter=pydantic_data_converter
    )
    runtime = HAProxyRuntime(
        HAProxyRouter(runtime_api=stack.haproxy_admin_tcp, backend=stack.haproxy_backend)
    )
    await one_run(client, stack, runtime)  # warm-up: first workflow tasks, connections
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        for key, value in (await one_run(client, stack, runtime)).items():
            samples.setdefault(key, []).append(value)
    result: dict[str, Any] = {"runs": runs}
    for key in ("rollback", "pause", "rollback_ack", "pause_ack", "cli_signal_rollback"):
        result |= summary(key, samples[key])
    result |= summary("cli_signal_exit", samples["cli_signal_exit"])
    result["goal"] = {
        **GOAL,
        "met": result["rollback_p50_ms"] <= GOAL["rollback_p50_ms"]
        and result["rollback_p95_ms"] <= GOAL["rollback_p95_ms"],
    }
    result["poll_ms"] = POLL_S * 1000
    result["machine"] = machine()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--dir", help="an existing dev stack's folder (default: a fresh one)")
    args = parser.parse_args()
    own = args.dir is None
    directory = Path(args.dir or tempfile.mkdtemp(prefix="reaction-"))
    # A stack of its own stops with it, also on SIGTERM (`timeout`) or Ctrl-C.
    with contextlib.ExitStack() as cleanup:
        if own:
            cleanup.callback(shutil.rmtree, directory, ignore_errors=True)
            stack = cleanup.enter_context(devstack.running(directory))
        else:
            stack = devstack.load(directory)
        result = asyncio.run(measure(stack, args.runs))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
