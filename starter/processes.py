"""Background processes for the dev stack: free ports, detached spawns, readiness waits, stops."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx

from plans.errors import RolloutError

LOCALHOST = "127.0.0.1"

# Popen objects of the processes this interpreter started: kept so that they can be
# reaped (a dead child stays a zombie, and looks alive, until its parent waits on it).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RolloutError):
    """A dev-stack process that could not be started, became unready or would not stop."""


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


def start_time(pid: int) -> int | None:
    """The kernel's start time of pid (clock ticks since boot), or None where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces: count fields after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def pid_alive(pid: int, started: int | None = None) -> bool:
    """True when pid runs (not a zombie) and, if ``started`` is given, is still that process."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return started is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    # A recorded start time guards against a recycled pid after a reboot or a long pause.
    return started is None or start_time(pid) == started


def _signal(pid: int, sig: signal.Signals) -> None:
    # Each process leads its own group (start_new_session), so its children go with it.
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.poll()


def stop_all(pids: Mapping[str, int], *, grace: float = 10.0) -> list[str]:
    """SIGTERM every live pid, SIGKILL those still alive after ``grace``; return names stopped."""
    live = {name: pid for name, pid in pids.items() if pid_alive(pid)}
    for pid in live.values():
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(pid_alive(pid) for pid in live.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in live.values():
        if pid_alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(pid_alive(pid) for pid in live.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    stubborn = [name for name, pid in live.items() if pid_alive(pid)]
    for pid in live.values():
        _reap(pid)
    if stubborn:
        raise StackError(f"could not stop {', '.join(stubborn)} even with SIGKILL")
    return list(live)


def tcp_open(port: int, host: str = LOCALHOST) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


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
            raise StackError(f"{name} exited before it was ready; see {log}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise StackError(
                f"{name} was not ready after {timeout:g}s; see {log}:\n{log_tail(log)}"
            )
        time.sleep(0.1)
    if not pid_alive(pid):
        # Readiness came from someone else's server on our port: ours lost the bind.
        raise StackError(f"{name} exited (is its port in use?); see {log}:\n{log_tail(log)}")
