"""How fast a rollout reacts to an operator, on the real dev stack; prints one JSON object.

Each run starts a rollout at canary 20%, waits until it bakes, then:

- pause through the `rollout` CLI's path (``operations.send_command``, an update): time from
  sending until the status query says ``paused``;
- resume, then rollback the same way: time from sending until HAProxy's admin socket reports
  canary weight 0 (polled every 5 ms);
- on a second rollout, rollback with ``temporal workflow signal`` (a new CLI process, as an
  operator would type it): time from launching the CLI until canary weight 0;
- on a third, whose plan has an ``on: event`` hook on ``rollback_started`` (20 retries) and a
  notification channel, both aimed at a server that accepts connections and never answers:
  the same rollback, reported as ``rollback_dead_hooks_*`` beside ``rollback_*``;
- then, ``--terminate-runs`` times (at least 5), a rollout at 50% is terminated (``temporal
  workflow terminate``'s path): time until its lease has put the canary back to weight 0.

    .venv/bin/python benchmarks/reaction.py [--runs 20] [--terminate-runs 5] [--dir DIR]

Goals: rollback p50 <= 150 ms, p95 <= 500 ms; with dead hooks and channels, p95 within 1.2x
of the run without them; terminate -> canary 0 p95 <= 30 s.

benchmarks/README.md's table comes from ``.venv/bin/python benchmarks/reaction.py --runs 20
--terminate-runs 10``. ``--quick`` measures one run and one terminate without a warm-up,
on a stack on free ports, its dead channel hearing only ``rollback_started`` (its start
then does not wait for the message about the start to time out, some 18 s): the same JSON,
for the tests, not for the numbers.
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
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from client.connection import end_process
from client.leases import holder
from plans import (
    CommandKind,
    HAProxyRouter,
    OperatorCommand,
    Plan,
    RolloutState,
    parse_plan,
)
from tests.stack.conftest import ANY_PORTS
from tests.stack_plans import error_rate_plan

TEMPORAL = str(Path(sys.executable).parent / "temporal")
POLL_S = 0.005
GOAL = {"rollback_p50_ms": 150.0, "rollback_p95_ms": 500.0}
DEAD_HOOKS_RATIO = 1.2
TERMINATE_GOAL_S = 30.0
DEAD_URL_ENV = "ROLLOUT_BENCH_DEAD_URL"


def percentile(values: list[float], q: float, digits: int = 1) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], digits)


def summary(name: str, values: list[float]) -> dict[str, float]:
    return {
        f"{name}_p50_ms": percentile(values, 50),
        f"{name}_p95_ms": percentile(values, 95),
        f"{name}_max_ms": round(max(values), 1),
    }


def plan_for(
    stack: devstack.StackInfo,
    service: str,
    weight: int = 20,
    dead: str = "",
    hears: list[str] | None = None,
) -> Plan:
    """The rollout each run starts; with ``dead`` (a URL nothing answers at) its plan has a
    hook on ``rollback_started`` and a channel, both aimed there. The channel hears every
    event, or the ``hears`` ones."""
    stages = [{"name": "canary", "weight": weight, "bake": "10m", "check_every": "30s"}]
    data = error_rate_plan(stack, service, stages, window="30s")
    if dead:
        data["hooks"] = [
            {
                "name": "pager",
                "on": "event",
                "mode": "notify",
                "events": ["rollback_started"],
                "url": f"{dead}/hook",
                "retries": 20,
                "timeout": "5s",
            }
        ]
        channel: dict[str, Any] = {"name": "ops", "url_env": DEAD_URL_ENV}
        if hears is not None:
            channel["events"] = hears
        data["notify"] = {"channels": [channel]}
    return parse_plan(data)


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A loopback server that takes connections and never answers; its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


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
    client: Client,
    stack: devstack.StackInfo,
    weight: int = 20,
    dead: str = "",
    hears: list[str] | None = None,
) -> tuple[str, WorkflowHandle[Any, Any]]:
    service = f"reaction-{uuid.uuid4().hex[:8]}"
    plan = plan_for(stack, service, weight, dead, hears)
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    await wait_status(client, service, lambda s: s.state == RolloutState.BAKING)
    return service, handle


async def ended(handle: WorkflowHandle[Any, Any]) -> None:
    # A rollback ends the run as failed: that is the expected end here.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(handle.result(), timeout=30)


async def one_run(
    client: Client,
    stack: devstack.StackInfo,
    runtime: HAProxyRuntime,
    dead: str,
    hears: list[str] | None = None,
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

    service, handle = await started(client, stack, dead=dead, hears=hears)
    watch = CanaryWatch(runtime, 0)
    dead_sent = time.perf_counter()
    await operations.send_command(client, service, rollback)
    dead_restored = await asyncio.to_thread(watch.wait, 30.0)
    # The run would go on telling the dead hook and channel for minutes: end it and its
    # lease (stable is back, read above) so the next run can claim the target.
    await handle.terminate("benchmark: the rollback was measured")
    await end_lease(client, stack)
    return {
        "rollback_dead_hooks": (dead_restored - dead_sent) * 1000,
        "pause": (paused - sent) * 1000,
        "pause_ack": (acked - sent) * 1000,
        "rollback": (restored - rollback_sent) * 1000,
        "rollback_ack": (rollback_acked - rollback_sent) * 1000,
        "cli_signal_rollback": (cli_restored - launched) * 1000,
        "cli_signal_exit": (cli_exited - launched) * 1000,
    }


async def terminate_run(
    client: Client, stack: devstack.StackInfo, runtime: HAProxyRuntime
) -> float:
    """Seconds from terminating a rollout at 50% until HAProxy routes no request to the canary."""
    _, handle = await started(client, stack, weight=50)
    watch = CanaryWatch(runtime, 0)
    sent = time.perf_counter()
    await handle.terminate("benchmark: terminate at 50%")
    restored = await asyncio.to_thread(watch.wait, 120.0)
    await wait_lease_free(client, stack)
    return restored - sent


async def end_lease(client: Client, stack: devstack.StackInfo) -> None:
    """Terminate the target's lease, if one runs."""
    lease_id = plan_for(stack, "any").target_lease_id
    with contextlib.suppress(RPCError):
        await client.get_workflow_handle(lease_id).terminate("benchmark: run measured")


async def wait_lease_free(client: Client, stack: devstack.StackInfo, timeout: float = 60) -> None:
    """Wait until the target's lease has ended, so the next run can claim the target."""
    lease_id = plan_for(stack, "any").target_lease_id
    deadline = time.perf_counter() + timeout
    while await holder(client, lease_id) is not None:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the lease {lease_id} did not end in {timeout:g}s")
        await asyncio.sleep(0.05)


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


async def measure(
    stack: devstack.StackInfo,
    runs: int,
    terminate_runs: int,
    dead: str,
    warm_up: bool = True,
    hears: list[str] | None = None,
) -> dict[str, Any]:
    client = await Client.connect(
        stack.temporal_address, namespace=stack.namespace, data_converter=pydantic_data_converter
    )
    runtime = HAProxyRuntime(
        HAProxyRouter(runtime_api=stack.haproxy_admin_tcp, backend=stack.haproxy_backend)
    )
    if warm_up:
        await one_run(client, stack, runtime, dead, hears)  # first workflow tasks, connections
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        await wait_lease_free(client, stack)
        for key, value in (await one_run(client, stack, runtime, dead, hears)).items():
            samples.setdefault(key, []).append(value)
    terminates = []
    for _ in range(terminate_runs):
        await wait_lease_free(client, stack)
        terminates.append(await terminate_run(client, stack, runtime))
    result: dict[str, Any] = {"runs": runs, "terminate_runs": terminate_runs}
    for key in (
        "rollback",
        "rollback_dead_hooks",
        "pause",
        "rollback_ack",
        "pause_ack",
        "cli_signal_rollback",
    ):
        result |= summary(key, samples[key])
    result |= summary("cli_signal_exit", samples["cli_signal_exit"])
    result["terminate_restore_p50_s"] = percentile(terminates, 50, digits=3)
    result["terminate_restore_p95_s"] = percentile(terminates, 95, digits=3)
    result["terminate_restore_max_s"] = round(max(terminates), 3)
    dead_ratio = result["rollback_dead_hooks_p95_ms"] / max(result["rollback_p95_ms"], 1e-9)
    result["rollback_dead_hooks_p95_ratio"] = round(dead_ratio, 2)
    result["goal"] = {
        **GOAL,
        "met": result["rollback_p50_ms"] <= GOAL["rollback_p50_ms"]
        and result["rollback_p95_ms"] <= GOAL["rollback_p95_ms"],
        "dead_hooks_p95_ratio": DEAD_HOOKS_RATIO,
        "dead_hooks_met": dead_ratio <= DEAD_HOOKS_RATIO,
        "terminate_restore_p95_s": TERMINATE_GOAL_S,
        "terminate_met": result["terminate_restore_p95_s"] <= TERMINATE_GOAL_S,
    }
    result["poll_ms"] = POLL_S * 1000
    result["machine"] = machine()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--terminate-runs", type=int, default=5)
    parser.add_argument("--dir", help="an existing dev stack's folder (default: a fresh one)")
    parser.add_argument(
        "--quick", action="store_true", help="one run, one terminate, no warm-up, free ports"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.terminate_runs = 1, 1
    elif args.terminate_runs < 5:
        parser.error("--terminate-runs: at least 5, for a p95 worth the name")
    own = args.dir is None
    directory = Path(args.dir or tempfile.mkdtemp(prefix="reaction-"))
    # A stack of its own stops with it, also on SIGTERM (`timeout`) or Ctrl-C.
    with contextlib.ExitStack() as cleanup:
        dead = cleanup.enter_context(silent_server())
        # The worker a stack of its own starts reads the dead channel's URL from here.
        os.environ[DEAD_URL_ENV] = dead.replace("http://", "json://")
        if own:
            cleanup.callback(shutil.rmtree, directory, ignore_errors=True)
            ports = ANY_PORTS if args.quick else None
            stack = cleanup.enter_context(devstack.running(directory, ports=ports))
        else:
            stack = devstack.load(directory)
        # Quick: the dead channel hears only the rollback, so the start does not wait for
        # its message about the start to time out.
        hears = ["rollback_started"] if args.quick else None
        result = asyncio.run(
            measure(stack, args.runs, args.terminate_runs, dead, not args.quick, hears)
        )
    print(json.dumps(result, indent=2))
    # The SDK's native threads must not outlive a finalizing interpreter.
    end_process(0)


if __name__ == "__main__":
    main()
