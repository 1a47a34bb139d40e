"""Many concurrent rollouts on one worker against the dev server; prints one JSON object.

For each N (default 100, 500 and 1000): N rollouts start, spread over one check interval,
each baking at 20% with a real error-rate gate checked every 30 s against the dev stack's
Prometheus, on one `python -m worker` process. After a warm-up (until every rollout
bakes, as the visibility store says, then one and a half intervals) they run for
``--window`` seconds, then are terminated. The same N of bare workflows (a timer, then one
trivial local activity, in a loop on the rollouts' cadence: the same shape as a gate check
without our code or Prometheus) then run on one worker of the same kind, as the engine's own
ceiling.

From the histories: checks per second done in the window, the share of checks done more
than 1 s after they were due (a check still not done 1 s after its due time counts as late),
workflow-task schedule-to-start p95 and how long the worker held each task; from /proc:
the worker's CPU and peak RSS, and how long the worker's, the dev server's and Prometheus's
threads waited for a CPU (``cpu_wait_per_s``); from the worker's metrics: its task slots in
use (``worker_slots_used_mean_max``).

The stack it starts lives in a new temporary folder, the dev server's SQLite file
included: on a machine whose disk is shared and slow, ``TMPDIR=/dev/shm`` keeps it in
memory, so the run measures the worker and the engine rather than the disk.

With ``--hog`` each count runs twice: once quiet, then again beside a CPU hog
(``stress-ng --cpu 1``, Debian's package ``stress-ng``) that the benchmark starts before
the rollouts and stops, by pid, after the bare workflows of that count; an interrupted
benchmark (SIGTERM, Ctrl-C) stops it too. Each entry of the JSON's ``runs`` says
``"hog": true`` or ``false``.

    .venv/bin/python benchmarks/scale.py [--counts 100,500,1000] [--every 30] [--window 120]
        [--hog]

Goal, at 1,000 concurrent rollouts, in every run (quiet and beside the hog): a throughput
ratio to bare >= 0.9, and a share of late checks at most 5 points above bare's in the same
run; on the quiet machine, late checks <= 5% as well.

benchmarks/README.md's tables each name their command: the first, ``.venv/bin/python
benchmarks/scale.py --counts 100,500,1000 --every 30 --window 120``; the latest, at 1,000
rollouts quiet and beside the hog, ``.venv/bin/python benchmarks/scale.py --counts 1000
--hog``. ``--quick`` runs 4 rollouts checked every second for a 3 s window, then 4 bare
workflows, on a stack on free ports: the same JSON, for the tests, not for the numbers.

Only the standard library and temporalio are imported at the top: the bare workflow below
runs in Temporal's sandbox, which re-imports this module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow

LATE_S = 1.0
START_ATTEMPTS = 10  # beside the hog, the dev server can take a minute to answer


def _root() -> Path:
    # A function, not a module constant: the sandbox forbids Path.resolve at import.
    return Path(__file__).resolve().parent.parent


GOAL = {
    "rollouts": 1000,
    "ratio_vs_bare": 0.9,
    "late_points_over_bare": 0.05,
    "late_check_share_quiet": 0.05,
}

HOG = ["stress-ng", "--cpu", "1"]
HOG_MISSING = (
    "--hog needs stress-ng, which is not installed: on Debian or Ubuntu install it with"
    " `apt-get install -y stress-ng` (as root), or run without --hog"
)


# -- the bare workflow: the engine's ceiling for a timer + a local activity loop -------------


@activity.defn(name="bare_check")
def bare_check(n: int) -> int:
    return n + 1


@workflow.defn(name="BareLoop")
class BareLoop:
    @workflow.run
    async def run(self, every_s: float) -> None:
        # The rollouts' cadence: each check is due one interval after the last was due (one
        # interval from now once that has passed), so a late check does not push the next
        # one later and bare is asked for as many checks as the rollouts are.
        every = timedelta(seconds=every_s)
        n, due = 0, workflow.now() + every
        while True:
            await workflow.sleep(due - workflow.now(), summary="next check")
            n = await workflow.execute_local_activity(
                bare_check, n, start_to_close_timeout=timedelta(seconds=10)
            )
            due += every
            if due <= workflow.now():
                due = workflow.now() + every


async def serve_bare(queue: str) -> None:
    """A worker like the product's (threads, limits, runner, sticky timeout) for BareLoop."""
    import signal
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.worker import Worker

    sys.path.insert(0, str(_root()))
    from client.connection import connect
    from worker.main import _runtime, sticky_timeout, workflow_runner

    client = await connect(_runtime())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=64) as executor:
        worker = Worker(
            client,
            task_queue=queue,
            workflows=[BareLoop],
            activities=[bare_check],
            activity_executor=executor,
            max_concurrent_activities=64,
            # The product's runner and sticky timeout: bare measures the engine as ours uses it.
            sticky_queue_schedule_to_start_timeout=sticky_timeout(),
            workflow_runner=workflow_runner(),
        )
        async with worker:
            print(f"worker polling task queue {queue!r}", flush=True)
            await stop.wait()


# -- measuring -----------------------------------------------------------------------------


@dataclass
class Check:
    due: datetime
    done: datetime | None


@dataclass
class Measured:
    checks: list[Check] = field(default_factory=list)
    schedule_to_start_s: list[float] = field(default_factory=list)
    # How long the worker held each workflow task (its local activity runs inside it).
    start_to_complete_s: list[float] = field(default_factory=list)
    # Workflow tasks that timed out (a sticky task not picked up in time is moved to the
    # normal queue, where the worker rebuilds the workflow from its whole history).
    task_timeouts: int = 0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def analyse(events: list[Any], into: Measured, start: datetime, end: datetime) -> None:
    """Pair each timer with the local-activity marker after it; note workflow-task waits."""
    from temporalio.api.enums.v1 import EventType

    due: datetime | None = None
    scheduled: datetime | None = None
    task_started: datetime | None = None
    for event in events:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_TIMER_STARTED:
            timeout = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            due = at + timeout
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED and due is not None:
            if start <= due <= end:
                into.checks.append(Check(due, at))
            due = None
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            scheduled = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and scheduled is not None:
            if start <= scheduled <= end:
                into.schedule_to_start_s.append((at - scheduled).total_seconds())
                task_started = at
            scheduled = None
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and task_started is not None:
            into.start_to_complete_s.append((at - task_started).total_seconds())
            task_started = None
        elif kind in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
            EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        ):
            # A task that started and never completed is not paired with a later completion.
            task_started = None
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT and start <= at <= end:
                into.task_timeouts += 1
    if due is not None and start <= due <= end:
        into.checks.append(Check(due, None))


class ProcessMeter:
    """CPU seconds and peak RSS of one process, read from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")
        self.peak_rss_mb = 0.0

    def cpu_s(self) -> float:
        return self._cpu_s(Path(f"/proc/{self.pid}/stat").read_text())

    def cpu_s_by_thread_name(self) -> dict[str, float]:
        """CPU seconds summed by thread name: ``python`` for the interpreter's threads, the
        SDK's core runs on ``tokio-rt-worker`` threads."""
        sums: dict[str, float] = {}
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue  # the thread ended meanwhile
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            sums[name] = sums.get(name, 0.0) + self._cpu_s(stat)
        return sums

    def waited_s(self) -> float:
        """Seconds its threads (those alive now) spent ready to run but waiting for a CPU.

        From each thread's ``schedstat`` (run-queue delay): on a busy machine it tells a
        process that is slow because it waits for the CPU from one that waits for others.
        """
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # the thread ended meanwhile, or the kernel keeps no schedstat
        return total / 1e9

    def _cpu_s(self, stat: str) -> float:
        """User plus system CPU seconds from a /proc ``stat`` line (after the ``(name)``)."""
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick

    def sample(self) -> None:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)


# The SDK's own counters, read from the worker's metrics endpoint before and after the window:
# a cache miss or forced eviction makes the worker rebuild a workflow from its history.
WORKER_COUNTERS = (
    "sticky_cache_hit",
    "sticky_cache_miss",
    "sticky_cache_total_forced_eviction",
    "workflow_task_execution_failed",
    "workflow_task_queue_poll_succeed",
)


def worker_samples(port: int) -> list[tuple[str, str, float]]:
    """The worker's metrics now: (name without ``temporal_`` and ``_total``, labels, value)."""
    import urllib.request

    from devstack.processes import LOCALHOST

    url = f"http://{LOCALHOST}:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        name, _, labels = head.partition("{")
        name = name.removeprefix("temporal_").removesuffix("_total")
        samples.append((name, labels, float(value)))
    return samples


def slots_used(port: int) -> dict[str, float]:
    """The SDK's ``worker_task_slots_used`` gauge now, by worker type (workflow, local...)."""
    used: dict[str, float] = {}
    for name, labels, value in worker_samples(port):
        if name == "worker_task_slots_used":
            kind = labels.split('worker_type="', 1)[-1].split('"', 1)[0]
            used[kind] = used.get(kind, 0.0) + value
    return used


def worker_counters(port: int) -> dict[str, float]:
    """The SDK's counters named in WORKER_COUNTERS, summed over their labels."""
    sums = dict.fromkeys(WORKER_COUNTERS, 0.0)
    for name, _, value in worker_samples(port):
        if name in sums:
            sums[name] += value
    return sums


async def started(client: Any, workflow_id: str, start: Callable[[], Awaitable[Any]]) -> Any:
    """The started workflow's handle; a start the busy server did not answer in time is retried.

    A start that timed out may have happened all the same: the retry then finds it running.
    """
    from temporalio.exceptions import WorkflowAlreadyStartedError
    from temporalio.service import RPCError, RPCStatusCode

    from client.operations import AlreadyRolling

    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return await start()
        except (WorkflowAlreadyStartedError, AlreadyRolling):
            if attempt == 1:
                raise
            return client.get_workflow_handle(workflow_id)
        except RPCError as error:
            busy = error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE)
            if attempt == START_ATTEMPTS or not (busy or "Timeout expired" in str(error)):
                raise
            await asyncio.sleep(min(2.0 * attempt, 10.0))
    raise AssertionError("unreachable")


async def until_baking(client: Any, queue: str, count: int, every_s: float) -> int:
    """Wait until every rollout bakes (at most 20 intervals); how many do not.

    Read from Temporal's visibility store (the `RolloutState` search attribute), so the
    warm-up asks the server, not the worker being measured: a status query per rollout is
    a task for that worker, and beside the hog those queries held back the rollouts' own
    starts. A rollout's first check is due one interval after it starts baking.
    """
    from temporalio.service import RPCError

    query = f"TaskQueue = '{queue}' AND RolloutState = 'baking'"
    deadline = time.monotonic() + 20 * every_s
    baking = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(RPCError):  # a busy server: asked again below
            baking = (await client.count_workflows(query)).count
        if baking >= count:
            return 0
        await asyncio.sleep(min(5.0, every_s))
    return count - baking


async def wind_down(handles: list[Any], pids: dict[str, int]) -> None:
    """Terminate the workflows, then stop the processes: also when the server cannot answer.

    Beside the hog a busy dev server has timed out terminates; the worker must stop anyway.
    """
    from devstack.processes import stop_all

    try:
        await gather_limited(
            [h.terminate("benchmark over") for h in handles], return_exceptions=True
        )
    finally:
        stop_all(pids)


async def gather_limited(
    coros: list[Any], limit: int = 32, *, return_exceptions: bool = False
) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=return_exceptions)


def start_worker(stack: Any, kind: str, queue: str, log: Path, metrics_port: int) -> int:
    from devstack.processes import LOCALHOST, spawn

    env = {
        "TEMPORAL_ADDRESS": stack.temporal_address,
        "TEMPORAL_NAMESPACE": stack.namespace,
        "ROLLOUT_TASK_QUEUE": queue,
        "ROLLOUT_WORKER_METRICS": f"{LOCALHOST}:{metrics_port}",
        "PYTHONPATH": str(_root()),
    }
    if kind == "ours":
        argv = [sys.executable, "-m", "worker"]
    else:
        argv = [
            sys.executable,
            "-c",
            f"import benchmarks.scale as s, asyncio; asyncio.run(s.serve_bare({queue!r}))",
        ]
    pid = spawn(argv, log, env=env, cwd=_root())
    deadline = time.monotonic() + 60
    while "worker polling task queue" not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {kind} worker did not start; see {log}")
        time.sleep(0.1)
    return pid


def rollout_plan(stack: Any, service: str, every_s: float, router: dict[str, Any]) -> Any:
    from plans import parse_plan
    from tests.stack_plans import error_rate_plan

    stages = [{"name": "twenty", "weight": 20, "bake": "7d", "check_every": f"{every_s:g}s"}]
    # A bench of minutes must not pause on a scrape gap.
    data = error_rate_plan(stack, service, stages, window="1m", inconclusive_limit=1000)
    # Each rollout owns its target, so each gets a backend of its own; the gates still
    # read the dev stack's backend, which carries the load generator's traffic.
    data["router"] = router
    return parse_plan(data)


def start_fleet_haproxy(stack: Any, count: int, folder: Path) -> tuple[int, str]:
    """An HAProxy of its own with ``count`` backends over the stack's two servers.

    Returns its pid and runtime API address; it listens on loopback only.
    """
    from devstack.binaries import find_binaries
    from devstack.processes import LOCALHOST, free_port, spawn, tcp_open

    admin = free_port()
    lines = [
        "global",
        f"    stats socket ipv4@{LOCALHOST}:{admin} level admin",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
    ]
    for i in range(count):
        lines += [
            f"backend fleet{i}",
            "    balance roundrobin",
            f"    server stable {LOCALHOST}:{stack.ports['stable']} weight 100",
            f"    server canary {LOCALHOST}:{stack.ports['canary']} weight 0",
        ]
    config = folder / f"fleet-{count}.cfg"
    config.write_text("\n".join(lines) + "\n")
    binary = find_binaries(None).haproxy
    pid = spawn([binary, "-db", "-f", str(config)], folder / f"fleet-{count}.log")
    deadline = time.monotonic() + 30
    while not tcp_open(admin):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fleet HAProxy did not start; see {folder}")
        time.sleep(0.1)
    return pid, f"tcp://{LOCALHOST}:{admin}"


def start_hog(folder: Path, limit_s: float) -> int:
    """``stress-ng --cpu 1`` in a session of its own; returns its pid (stop it with stop_all).

    Its own ``--timeout`` ends it even if this benchmark is killed beyond any cleanup.
    """
    import shutil

    from devstack.processes import spawn

    binary = shutil.which(HOG[0])
    if binary is None:
        raise SystemExit(HOG_MISSING)
    argv = [binary, *HOG[1:], "--timeout", f"{math.ceil(limit_s)}s"]
    pid = spawn(argv, folder / "hog.log")
    time.sleep(1.0)  # its CPU worker is forked and spinning
    return pid


def goal_met(run: dict[str, Any]) -> bool:
    """Whether one run (one count, quiet or beside the hog) meets the goal's conditions."""
    ratio, bare = run.get("ratio_vs_bare"), run.get("bare")
    if ratio is None or bare is None:
        return False
    late = float(run["late_check_share"])
    return bool(
        ratio >= GOAL["ratio_vs_bare"]
        and late - bare["late_check_share"] <= GOAL["late_points_over_bare"] + 1e-9
        and (run["hog"] or late <= GOAL["late_check_share_quiet"])
    )


async def one_count(
    client: Any, stack: Any, kind: str, count: int, every_s: float, window_s: float, logs: Path
) -> dict[str, Any]:
    from client import operations
    from devstack.processes import free_port

    queue = f"scale-{kind}-{count}-{uuid.uuid4().hex[:6]}"
    fleet_pid, runtime_api = start_fleet_haproxy(stack, count, logs) if kind == "ours" else (0, "")
    metrics_port = free_port()
    pid = start_worker(stack, kind, queue, logs / f"{queue}.log", metrics_port)
    meter = ProcessMeter(pid)
    servers = {name: ProcessMeter(stack.pids[name]) for name in ("temporal", "prometheus")}
    handles: list[Any] = []
    try:
        began = time.monotonic()

        async def start_one(i: int) -> None:
            await asyncio.sleep(i * every_s / count)
            if kind == "ours":
                service = f"scale-{count}-{i}-{queue[-6:]}"
                router = {"kind": "haproxy", "runtime_api": runtime_api, "backend": f"fleet{i}"}
                plan = rollout_plan(stack, service, every_s, router)
                handles.append(
                    await started(
                        client,
                        plan.workflow_id,
                        lambda: operations.start_rollout(client, plan, queue),
                    )
                )
            else:
                workflow_id = f"bare-{queue}-{i}"
                handles.append(
                    await started(
                        client,
                        workflow_id,
                        lambda: client.start_workflow(
                            "BareLoop", every_s, id=workflow_id, task_queue=queue
                        ),
                    )
                )

        await asyncio.gather(*(start_one(i) for i in range(count)))
        started_s = time.monotonic() - began
        # Warm-up: a rollout's start (claim, lease, first shift) is not its steady loop, so
        # the window opens once every rollout bakes and has had its first check due; bare
        # loops start at once.
        not_baking = await until_baking(client, queue, count, every_s) if kind == "ours" else 0
        warmed_s = time.monotonic() - began - started_s
        await asyncio.sleep(every_s if kind == "bare" else 1.5 * every_s)
        start = datetime.now(UTC)
        # For a profiler attached by hand: the worker's pid and when its window opens.
        print(f"{kind} {count}: window open, worker pid {pid}", file=sys.stderr, flush=True)
        cpu_before = meter.cpu_s()
        threads_before = meter.cpu_s_by_thread_name()
        servers_before = {name: m.cpu_s() for name, m in servers.items()}
        meters = {"worker": meter, **servers}
        waited_before = {name: m.waited_s() for name, m in meters.items()}
        counters_before = worker_counters(metrics_port)
        load = [os.getloadavg()[0]]
        deadline = time.monotonic() + window_s
        slots: dict[str, list[float]] = {}
        while time.monotonic() < deadline:
            meter.sample()
            for kind_, used in slots_used(metrics_port).items():
                slots.setdefault(kind_, []).append(used)
            load.append(os.getloadavg()[0])
            await asyncio.sleep(min(2.0, max(deadline - time.monotonic(), 0)))
        end = datetime.now(UTC)
        cpu = meter.cpu_s() - cpu_before
        threads = {
            name: round(seconds - threads_before.get(name, 0.0), 2)
            for name, seconds in meter.cpu_s_by_thread_name().items()
        }
        counters = worker_counters(metrics_port)
        counters = {name: counters[name] - counters_before[name] for name in counters}
        servers_cpu = {name: m.cpu_s() - servers_before[name] for name, m in servers.items()}
        waited = {name: m.waited_s() - waited_before[name] for name, m in meters.items()}
        meter.sample()
        # Checks due up to LATE_S before the end had their chance to be on time.
        measured = Measured()
        histories = await gather_limited(
            [
                client.get_workflow_handle(h.id).fetch_history(rpc_timeout=timedelta(seconds=60))
                for h in handles
            ]
        )
        for history in histories:
            analyse(list(history.events), measured, start, end - timedelta(seconds=LATE_S))
    finally:
        await wind_down(
            handles, {"worker": pid, **({"fleet-haproxy": fleet_pid} if fleet_pid else {})}
        )
    # Checks counted are those due in [start, end - LATE_S]: rates are over that span.
    window = (end - start).total_seconds() - LATE_S
    done = [c for c in measured.checks if c.done is not None]
    late = [
        c for c in measured.checks if c.done is None or (c.done - c.due).total_seconds() > LATE_S
    ]
    delays = [(c.done - c.due).total_seconds() for c in done if c.done is not None]
    s2s = percentile(measured.schedule_to_start_s, 95)
    return {
        "workflows": count,
        "start_s": round(started_s, 1),
        "warm_up_s": round(warmed_s, 1),
        "not_baking_after_warm_up": not_baking,
        "window_s": round(window, 1),
        "checks_due": len(measured.checks),
        "checks_done": len(done),
        "checks_per_s": round(len(done) / window, 2),
        "expected_checks_per_s": round(count / every_s, 2),
        "late_check_share": round(len(late) / max(len(measured.checks), 1), 4),
        "check_delay_p50_s": round(percentile(delays, 50) or 0, 3),
        "check_delay_p95_s": round(percentile(delays, 95) or 0, 3),
        "workflow_task_schedule_to_start_p95_ms": round((s2s or 0) * 1000, 1),
        "workflow_task_start_to_complete_p50_ms": round(
            1000 * (percentile(measured.start_to_complete_s, 50) or 0), 1
        ),
        "workflow_task_start_to_complete_p95_ms": round(
            1000 * (percentile(measured.start_to_complete_s, 95) or 0), 1
        ),
        "workflow_task_timeouts": measured.task_timeouts,
        "worker_cpu_percent": round(100 * cpu / window, 1),
        "worker_cpu_ms_per_check": round(1000 * cpu / len(done), 2) if done else None,
        "worker_peak_rss_mb": round(meter.peak_rss_mb, 1),
        "worker_cpu_s_by_thread": {name: c for name, c in sorted(threads.items()) if c > 0},
        **{f"{name}_cpu_percent": round(100 * c / window, 1) for name, c in servers_cpu.items()},
        # Seconds a second (over the window) each process's threads waited for a CPU.
        "cpu_wait_per_s": {name: round(w / window, 2) for name, w in waited.items()},
        "worker_counters_in_window": {name: round(c) for name, c in counters.items()},
        # Task slots in use, sampled every 2 s (the SDK's default is 100 of each kind).
        "worker_slots_used_mean_max": {
            name: [round(sum(v) / len(v), 1), max(v)] for name, v in sorted(slots.items()) if v
        },
        # The machine's 1-minute load average over the window: other work on it shows here.
        "load_avg_1m": round(sum(load) / len(load), 2),
    }


async def measure(
    stack: Any,
    counts: list[int],
    every_s: float,
    window_s: float,
    with_bare: bool = True,
    hog: bool = False,
    only_hog: bool = False,
) -> dict[str, Any]:
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    from devstack.processes import stop_all

    client = await Client.connect(
        stack.temporal_address, namespace=stack.namespace, data_converter=pydantic_data_converter
    )
    logs = Path(stack.dir) / "logs"
    runs = []
    for count in counts:
        for hogged in (True,) if only_hog else (False, True) if hog else (False,):
            # A backstop only: the hog is stopped by pid as soon as this count is measured.
            limit_s = 3 * (2 * every_s + window_s) * (2 if with_bare else 1) + 900
            hog_pid = start_hog(logs, limit_s) if hogged else 0
            try:
                runs.append(
                    await one_pair(client, stack, count, every_s, window_s, logs, with_bare)
                )
            finally:
                if hog_pid:
                    stop_all({"stress-ng": hog_pid})
            runs[-1] = {"rollouts": count, "hog": hogged, **runs[-1]}
            if with_bare:
                runs[-1]["goal_met"] = goal_met(runs[-1])
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    return {"runs": runs}


async def one_pair(
    client: Any,
    stack: Any,
    count: int,
    every_s: float,
    window_s: float,
    logs: Path,
    with_bare: bool,
) -> dict[str, Any]:
    """Our rollouts, then (unless told not to) as many bare workflows, under one condition."""
    ours = await one_count(client, stack, "ours", count, every_s, window_s, logs)
    if not with_bare:
        return {"late_check_share": ours["late_check_share"], "ours": ours}
    bare = await one_count(client, stack, "bare", count, every_s, window_s, logs)
    ratio = ours["checks_per_s"] / bare["checks_per_s"] if bare["checks_per_s"] else None
    return {
        "late_check_share": ours["late_check_share"],
        "late_points_over_bare": round(ours["late_check_share"] - bare["late_check_share"], 4),
        "ratio_vs_bare": round(ratio, 3) if ratio is not None else None,
        "ours": ours,
        "bare": bare,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="100,500,1000")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between checks")
    parser.add_argument("--window", type=float, default=120.0, help="measured seconds per run")
    parser.add_argument("--dir", help="an existing dev stack's folder (default: a fresh one)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare workflows")
    parser.add_argument(
        "--hog",
        action="store_true",
        help="run each count twice: quiet, then beside `stress-ng --cpu 1` (started and"
        " stopped here)",
    )
    parser.add_argument(
        "--only-hog", action="store_true", help="only the run beside the hog (implies --hog)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="--counts 4 --every 1 --window 3, on free ports",
    )
    args = parser.parse_args()
    if args.quick:
        args.counts, args.every, args.window = "4", 1.0, 3.0
    args.hog = args.hog or args.only_hog
    import shutil

    if args.hog and shutil.which(HOG[0]) is None:
        print(f"scale.py: {HOG_MISSING}", file=sys.stderr)
        sys.exit(2)
    sys.path.insert(0, str(_root()))
    import tempfile

    import devstack
    from benchmarks.reaction import machine
    from client.connection import end_process
    from devstack.processes import signals_interrupt
    from tests.stack.conftest import ANY_PORTS

    own = args.dir is None
    directory = Path(args.dir or tempfile.mkdtemp(prefix="scale-"))
    counts = [int(c) for c in args.counts.split(",")]
    # Whatever this process started (a stack of its own, workers, HAProxy, the hog) stops
    # with it, also on SIGTERM (`timeout`) or Ctrl-C: both raise KeyboardInterrupt here.
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(signals_interrupt())
        if own:
            cleanup.callback(shutil.rmtree, directory, ignore_errors=True)
            ports = ANY_PORTS if args.quick else None
            stack = cleanup.enter_context(
                devstack.running(directory, with_worker=False, ports=ports)
            )
        else:
            stack = devstack.load(directory)
        result = asyncio.run(
            measure(
                stack, counts, args.every, args.window, not args.no_bare, args.hog, args.only_hog
            )
        )
    judged = [r for r in result["runs"] if r["rollouts"] == GOAL["rollouts"]]
    result["goal"] = {
        **GOAL,
        "hog_measured": any(r["hog"] for r in judged),
        "met": bool(judged) and all(r.get("goal_met") for r in judged),
    }
    result["settings"] = {
        "every_s": args.every,
        "window_s": args.window,
        "late_after_s": LATE_S,
        "hog": " ".join(HOG) if args.hog else None,
    }
    result["machine"] = machine()
    print(json.dumps(result, indent=2))
    # The SDK's native threads must not outlive a finalizing interpreter.
    end_process(0)


if __name__ == "__main__":
    main()
