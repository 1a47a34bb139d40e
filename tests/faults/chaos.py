"""Tools for breaking the real stack on purpose and watching what it routes meanwhile.

Everything here talks to 127.0.0.1 only and stops what it starts by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from devstack.processes import LOCALHOST, family_of, pid_alive, spawn, stop_all
from plans import HAProxyRouter, Plan, RolloutState, RolloutStatus, TrafficSplit, parse_plan

TEMPORAL = str(Path(sys.executable).parent / "temporal")
ROOT = Path(__file__).resolve().parents[2]


# -- plans -------------------------------------------------------------------------------------


def quick_plan(
    stack: devstack.StackInfo,
    stages: list[dict[str, Any]],
    *,
    runtime_api: str | None = None,
    gate: dict[str, Any] | None = None,
    **extra: Any,
) -> Plan:
    """A plan on the stack with a real error-rate gate over a 3 s window of HAProxy counters."""
    canary = f'proxy="{stack.haproxy_backend}",server="$canary"'
    responses = f"haproxy_server_http_responses_total{{{canary}"
    error_rate = {
        "name": "error-rate",
        "query": f'sum(rate({responses},code="5xx"}}[3s])) / sum(rate({responses}}}[3s]))',
        "max": 0.05,
        "failure_limit": 2,
        # Right after a shift a 3 s rate has no data for a check or two: that must not pause
        # a test's rollout (the default limit of 3 would, at one check a second).
        "inconclusive_limit": 20,
        **(gate or {}),
    }
    data: dict[str, Any] = {
        "service": f"fault-{uuid.uuid4().hex[:8]}",
        "version": "v2",
        "stable": "stable",
        "canary": "canary",
        "router": {
            "kind": "haproxy",
            "runtime_api": runtime_api or stack.haproxy_admin_tcp,
            "backend": stack.haproxy_backend,
            "timeout": "1s",
        },
        "metrics": {"kind": "prometheus", "url": stack.prometheus_url, "timeout": "2s"},
        "gates": [error_rate],
        "stages": stages,
    }
    data.update(extra)
    return parse_plan(data)


# -- processes ---------------------------------------------------------------------------------


def kill9(stack_dir: Path, name: str) -> int:
    """SIGKILL one process of the stack (its whole group) and wait until it is gone."""
    info = devstack.load(stack_dir)
    pid = info.pids[name]
    try:
        family = family_of(psutil.Process(pid))
    except psutil.NoSuchProcess:
        family = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    # The whole group: a launcher can die before the server it started lets go of its port.
    psutil.wait_procs(family, timeout=10)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(pid), f"{name} (pid {pid}) survived SIGKILL"
    return pid


def stop(stack_dir: Path, name: str) -> None:
    """Stop one process of the stack the polite way (SIGTERM, then SIGKILL)."""
    info = devstack.load(stack_dir)
    stop_all({name: info.pids[name]})


@dataclass
class OwnWorker:
    """A ``python -m worker`` of our own: its own task queue and environment, stopped by pid."""

    stack: devstack.StackInfo
    task_queue: str
    env: dict[str, str]
    log: Path
    pid: int = 0

    def start(self) -> None:
        env = {
            "TEMPORAL_ADDRESS": self.stack.temporal_address,
            "TEMPORAL_NAMESPACE": self.stack.namespace,
            "ROLLOUT_TASK_QUEUE": self.task_queue,
            "ROLLOUT_WORKER_METRICS": "",
            # Temporal's own 10 s, not the worker's 30: these workers are killed on purpose,
            # and each task handed to a killed one waits this long before another takes it.
            "ROLLOUT_STICKY_TIMEOUT": "10",
            **self.env,
        }
        seen = self._polling_lines()  # a restart appends to the same log
        self.pid = spawn([sys.executable, "-m", "worker"], self.log, env=env, cwd=ROOT)
        deadline = time.monotonic() + 30
        while self._polling_lines() <= seen:
            assert pid_alive(self.pid), f"worker exited; see {self.log}"
            assert time.monotonic() < deadline, f"worker not polling after 30s; see {self.log}"
            time.sleep(0.05)

    def _polling_lines(self) -> int:
        if not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count("worker polling task queue")

    def kill(self) -> None:
        """SIGKILL, as a crash: the worker says goodbye to no one."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not pid_alive(self.pid), f"the worker (pid {self.pid}) survived SIGKILL"

    def stop(self) -> None:
        if self.pid and pid_alive(self.pid):
            stop_all({"worker": self.pid}, grace=10)


@contextlib.contextmanager
def own_worker(
    stack: devstack.StackInfo, log_dir: Path, env: dict[str, str] | None = None
) -> Iterator[OwnWorker]:
    worker = OwnWorker(
        stack=stack,
        task_queue=f"faults-{uuid.uuid4().hex[:8]}",
        env=env or {},
        log=log_dir / f"worker-{uuid.uuid4().hex[:6]}.log",
    )
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


# -- what HAProxy routes -----------------------------------------------------------------------


def haproxy(stack: devstack.StackInfo) -> HAProxyRuntime:
    return HAProxyRuntime(
        HAProxyRouter(runtime_api=f"unix://{stack.haproxy_socket}", backend=stack.haproxy_backend)
    )


class WeightRecorder:
    """Polls HAProxy's weights in a thread and keeps every distinct split it saw, in order."""

    def __init__(self, stack: devstack.StackInfo, every: float = 0.02) -> None:
        self.runtime = haproxy(stack)
        self.every = every
        self.splits: list[tuple[int, int]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WeightRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                split = self.runtime.get_split("stable", "canary")
            except Exception:
                self.errors += 1
            else:
                pair = (split.stable_weight, split.canary_weight)
                if not self.splits or self.splits[-1] != pair:
                    self.splits.append(pair)
            self._stop.wait(self.every)

    @property
    def canary_weights(self) -> list[int]:
        """The canary's percent at each settled split (weights summing to 100), in order.

        A shift raises one weight before lowering the other, so HAProxy briefly holds a
        split in between (say stable 80, canary 60 on the way from 20% to 60%); those
        are left out, and ``transients_between_neighbours`` checks them.
        """
        settled = [canary for stable, canary in self.splits if stable + canary == 100]
        return [w for i, w in enumerate(settled) if i == 0 or settled[i - 1] != w]

    def transients_between_neighbours(self) -> bool:
        """Every unsettled split lies between the settled ones before and after it."""
        pairs = self.splits
        for i, (stable, canary) in enumerate(pairs):
            if stable + canary == 100 or i == 0 or i == len(pairs) - 1:
                continue
            before, after = pairs[i - 1], pairs[i + 1]
            low = min(before[1] / max(sum(before), 1), after[1] / max(sum(after), 1))
            high = max(before[1] / max(sum(before), 1), after[1] / max(sum(after), 1))
            share = canary / max(stable + canary, 1)
            if not low - 1e-9 <= share <= high + 1e-9:
                return False
        return True


def reset_router(stack: devstack.StackInfo) -> None:
    """100% stable and a healthy canary, whatever a test left behind."""
    devstack.fault(Path(stack.dir), 0.0, 0)
    haproxy(stack).set_split("stable", "canary", TrafficSplit.canary_percent(0))


# -- waiting on a rollout ----------------------------------------------------------------------


async def until(
    client: Client,
    service: str,
    predicate: Callable[[RolloutStatus], bool],
    *,
    timeout: float = 60.0,
    every: float = 0.1,
    what: str = "",
) -> RolloutStatus:
    """Poll the status query until ``predicate`` holds; fail showing the last status if not."""
    deadline = time.monotonic() + timeout
    last: RolloutStatus | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = await operations.status(client, service)
            if predicate(last):
                return last
        await asyncio.sleep(every)
    shown = last.model_dump_json(exclude={"events", "commands"}) if last else "no status"
    raise AssertionError(f"rollout of {service} never reached {what or 'the condition'}: {shown}")


def baking(stage: int) -> Callable[[RolloutStatus], bool]:
    return lambda s: s.state == RolloutState.BAKING and s.stage_index == stage


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def stage_events(status: RolloutStatus) -> list[str]:
    """The audit trail's stage lines: ``stage 1/3 'a' (20%) started`` and ``... passed``."""
    return [e.text for e in status.events if e.kind == "stage"]


def expected_stage_events(plan: Plan) -> list[str]:
    lines = []
    for index, stage in enumerate(plan.stages):
        where = f"stage {index + 1}/{len(plan.stages)} {stage.name!r} ({stage.weight}%)"
        lines += [f"{where} started", f"{where} passed"]
    return lines


async def history_events(client: Client, workflow_id: str) -> list[Any]:
    handle = client.get_workflow_handle(workflow_id)
    return [event async for event in handle.fetch_history_events()]


async def scheduled_shifts(client: Client, workflow_id: str) -> list[int]:
    """Canary weights of every shift_traffic activity the run scheduled, in order."""
    weights = []
    for event in await history_events(client, workflow_id):
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name != "shift_traffic":
            continue
        request = json.loads(attributes.input.payloads[0].data)
        weights.append(request["split"]["canary_weight"])
    return weights


async def temporal_cli(stack: devstack.StackInfo, *args: str) -> tuple[int, str, str]:
    """Run the real ``temporal`` CLI against the stack; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        TEMPORAL,
        *args,
        "--address",
        stack.temporal_address,
        "--namespace",
        stack.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TEMPORAL_ADDRESS": stack.temporal_address},
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# -- a switchable path to HAProxy's admin API --------------------------------------------------


class AdminGate:
    """A TCP relay in front of HAProxy's admin API that can be closed and opened again.

    Closed, nothing listens on its port (connection refused), as when HAProxy's admin socket
    is gone; open, every connection is relayed to HAProxy as it is, unless ``hang_up`` is
    set: then each connection is accepted and closed without an answer, as a relay in front
    of a restarting HAProxy does.
    """

    def __init__(self, target_port: int) -> None:
        self.target = (LOCALHOST, target_port)
        probe = socket.socket()
        probe.bind((LOCALHOST, 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self.connections = 0
        self.hang_up = False
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def runtime_api(self) -> str:
        return f"tcp://{LOCALHOST}:{self.port}"

    def open(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOCALHOST, self.port))
            listener.listen(64)
            listener.settimeout(0.05)
            self._listener = listener
            self._stop.clear()
            self._thread = threading.Thread(target=self._serve, args=(listener,), daemon=True)
            self._thread.start()

    def __enter__(self) -> AdminGate:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            thread, self._thread = self._thread, None
        if listener is None:
            return
        self._stop.set()
        if thread is not None:
            thread.join(timeout=5)
        listener.close()

    def _serve(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            if self.hang_up:
                threading.Thread(target=self._hang_up, args=(conn,), daemon=True).start()
                continue
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    @staticmethod
    def _hang_up(conn: socket.socket) -> None:
        # Read the command first, so the close is a clean end of stream and not a reset.
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            conn.recv(4096)
        conn.close()

    def _relay(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            conn.close()
            return
        selector = selectors.DefaultSelector()
        selector.register(conn, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, conn)
        try:
            open_ends = 2
            while open_ends:
                for key, _ in selector.select(timeout=5):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        selector.unregister(source)
                        with contextlib.suppress(OSError):
                            key.data.shutdown(socket.SHUT_WR)
                        open_ends -= 1
                    else:
                        key.data.sendall(data)
        except OSError:
            pass
        finally:
            selector.close()
            conn.close()
            upstream.close()


# -- a webhook that remembers what it was sent -------------------------------------------------


@dataclass
class Webhook:
    """A local Slack-compatible webhook; ``status`` is what it answers, ``received`` what came."""

    status: int = 200
    answer: Callable[[str], str] = field(default=lambda path: "ok")
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    port: int = 0

    @contextlib.contextmanager
    def serving(self) -> Iterator[Webhook]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with contextlib.suppress(ValueError):
                    hook.received.append(json.loads(body))
                hook.paths.append(self.path)
                text = hook.answer(self.path).encode()
                self.send_response(hook.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.port = int(server.server_address[1])
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def url(self, path: str) -> str:
        return f"http://{LOCALHOST}:{self.port}{path}"

    def texts(self) -> list[str]:
        return [str(body.get("text", "")) for body in self.received]
