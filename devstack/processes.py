"""Background processes for the dev stack: free ports, detached spawns, readiness waits, stops."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from plans.errors import RolloutError

# What a production install leaves out: `pip install .` brings the worker, the CLI and the
# alert receiver; the dev stack and the demo service it runs need the devstack extra.
DEVSTACK_EXTRA = (
    "the dev stack and the demo need the devstack extra: pip install 'durable-rollouts[devstack]'"
    " (in a checkout: bash scripts/bootstrap.sh)"
)
# The extra's Python packages, by what imports them: this module, the demo service's
# metrics and its flag evaluation.
EXTRA_MODULES = ("psutil", "prometheus_client", "openfeature.contrib.provider.flagd")

LOCALHOST = "127.0.0.1"
# How far a process's create_time may move between two readings and still be the same process.
START_SLACK_S = 1.0
# The signals that ask a program to stop: a terminal's Ctrl-C, `kill`, `timeout`.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# Popen objects of the processes this interpreter started: kept so that they can be
# reaped (a dead child stays a zombie, and looks alive, until its parent waits on it).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RolloutError):
    """A dev-stack process that could not be started, became unready or would not stop."""


def require_extra() -> None:
    """Raise StackError naming the devstack extra when one of its packages is missing."""
    for module in EXTRA_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # its parent package is missing
            found = False
        if not found:
            raise StackError(f"{module.split('.')[0]} is not installed: {DEVSTACK_EXTRA}")


class _Missing:
    """Stands for psutil where it is not installed: any use names the extra to install."""

    def __getattr__(self, name: str) -> Any:
        raise StackError(f"psutil is not installed: {DEVSTACK_EXTRA}")


try:
    import psutil
except ImportError:  # a production install: `rollout --help` works, the dev stack cannot
    psutil = _Missing()  # type: ignore[assignment]


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """True when nothing listens on host:port, so a server of ours could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers set SO_REUSEADDR too: a port left in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOCALHOST, avoid: Iterable[int] = ()) -> int:
    """A port the kernel reports free now, not one of ``avoid``."""
    avoided = set(avoid)
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in avoided:
            return port


def choose_ports(preferred: Mapping[str, int], host: str = LOCALHOST) -> dict[str, int]:
    """Each role's preferred port when it is free, else a free one; no two roles share a port."""
    chosen: dict[str, int] = {}
    for role, port in preferred.items():
        taken = set(chosen.values())
        if 0 < port < 65536 and port not in taken and port_is_free(port, host):
            chosen[role] = port
        else:
            chosen[role] = free_port(host, avoid=taken)
    return chosen


def spawn(
    argv: list[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start argv detached in its own session, output appended to log; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("ab") as out:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        out.write(f"--- {stamp} {shlex.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as error:
            raise StackError(f"cannot run {argv[0]}: {error.strerror}") from None
    _CHILDREN[proc.pid] = proc
    return proc.pid


def start_time(pid: int) -> float | None:
    """When pid started (seconds since the epoch, psutil's ``create_time``), or None if gone."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _process(pid: int, started: float | None = None) -> psutil.Process | None:
    """pid as a psutil.Process while it runs (not a zombie) and, given ``started``, is that one."""
    try:
        process = psutil.Process(pid)
        # A recorded start time guards against a recycled pid after a reboot or a long pause;
        # the slack absorbs the boot time the kernel reports drifting with the wall clock.
        if started is not None and abs(process.create_time() - started) > START_SLACK_S:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        # Someone else's process: alive, but it cannot be proven to be the one recorded.
        return None if started is not None else psutil.Process(pid)
    return process


def pid_alive(pid: int, started: float | None = None) -> bool:
    """True when pid runs (not a zombie) and, if ``started`` is given, is still that process."""
    child = _CHILDREN.get(pid)
    if child is not None:
        # Ours: only reaping proves it has ended. The leader of a multithreaded process
        # shows as a zombie while its other threads, and the ports they hold, still go.
        return child.poll() is None
    return _process(pid, started) is not None


def _signal(process: psutil.Process, sig: signal.Signals) -> None:
    # Each process leads its own group (start_new_session), so its children go with it.
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    except (PermissionError, psutil.AccessDenied):
        # Not ours to stop: stop_all then names it among those that would not stop.
        pass


def family_of(process: psutil.Process) -> list[psutil.Process]:
    """The process and all its descendants (a launcher's server, say), while they run."""
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [process]


def _still_running(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` for processes to end; those still running after it."""
    deadline = time.monotonic() + timeout
    psutil.wait_procs(processes, timeout=timeout)
    # Without pidfd, a zombie nobody reaps waits out the timeout: it has ended all the same,
    # unless it is ours and not reaped yet (see pid_alive).
    alive = [p for p in processes if pid_alive(p.pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if pid_alive(p.pid)]
    return alive


def stop_all(pids: Mapping[str, int], *, grace: float = 10.0) -> list[str]:
    """SIGTERM every live pid, SIGKILL those still alive after ``grace``; return names stopped."""
    live = {name: p for name, pid in pids.items() if (p := _process(pid)) is not None}
    # A group dies process by process: wait for every member, or a port may still be held.
    family = [member for process in live.values() for member in family_of(process)]
    for process in live.values():
        _signal(process, signal.SIGTERM)
    alive = _still_running(family, grace)
    for process in alive:
        _signal(process, signal.SIGKILL)
    stubborn_pids = {p.pid for p in _still_running(alive, 5.0)}
    for process in live.values():
        child = _CHILDREN.pop(process.pid, None)
        if child is not None:
            child.poll()
    stubborn = [name for name, p in live.items() if p.pid in stubborn_pids]
    if stubborn:
        raise StackError(f"could not stop {', '.join(stubborn)} even with SIGKILL")
    return list(live)


# Signals that arrived inside signals_held(), to raise once it ends; its nesting depth.
_held: list[int] = []
_holding = 0


def _interrupt(signum: int, frame: object) -> None:
    if _holding:
        _held.append(signum)
        return
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@contextlib.contextmanager
def _stop_signals_raise() -> Iterator[bool]:
    if threading.current_thread() is not threading.main_thread():
        # Only the main thread can set handlers; Python runs them there anyway.
        yield False
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS}
    try:
        yield True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """In the block, SIGTERM raises KeyboardInterrupt like SIGINT, so ``finally`` clauses run.

    Processes started with ``spawn`` are in sessions of their own: no signal sent to their
    starter reaches them, so it must stop them itself, which SIGTERM's default action forbids.
    """
    with _stop_signals_raise():
        yield


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT wait until the block ends: for a spawn and its record, or a cleanup."""
    global _holding
    with _stop_signals_raise() as installed:
        if not installed:
            yield
            return
        _holding += 1
        try:
            yield
        finally:
            _holding -= 1
            arrived = list(_held) if not _holding else []
            if not _holding:
                _held.clear()
        if arrived:
            raise KeyboardInterrupt(f"stopped by {signal.Signals(arrived[0]).name}")


def tcp_open(port: int, host: str = LOCALHOST) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def listens(pid: int, port: int) -> bool:
    """True when the process pid itself listens on TCP ``port``.

    A port chosen free can be taken by someone else's server before ours binds it; then a
    connection succeeds while ours has failed, and only the listener's pid tells them apart.
    """
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections
    )


def http_ok(url: str, *, header: tuple[str, str] | None = None) -> bool:
    """True when url answers 2xx (and carries ``header`` with that value, when given)."""
    try:
        response = httpx.get(url, timeout=1.0)
    except httpx.HTTPError:
        return False
    if not response.is_success:
        return False
    return header is None or response.headers.get(header[0]) == header[1]


def log_tail(log: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class PortTaken(StackError):
    """A process lost its port to another program between choosing the port and binding it."""


# What the stack's programs print when their port is taken (Go, Python, HAProxy, Envoy).
_PORT_TAKEN = ("address already in use", "cannot bind socket", "errno 98")


def wait_ready(
    name: str,
    pid: int,
    log: Path,
    ready: Callable[[], bool],
    *,
    timeout: float = 30.0,
) -> None:
    """Poll ``ready`` until it holds; StackError names the log if pid dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not pid_alive(pid):
            tail = log_tail(log)
            if any(sign in tail.lower() for sign in _PORT_TAKEN):
                raise PortTaken(f"{name} could not bind its port; see {log}:\n{tail}")
            raise StackError(f"{name} exited before it was ready; see {log}:\n{tail}")
        if time.monotonic() > deadline:
            raise StackError(
                f"{name} was not ready after {timeout:g}s; see {log}:\n{log_tail(log)}"
            )
        time.sleep(0.1)
    if not pid_alive(pid):
        # Readiness came from someone else's server on our port: ours lost the bind.
        raise PortTaken(f"{name} exited (is its port in use?); see {log}:\n{log_tail(log)}")
