"""The demo app's task outcomes per version, over a recent window, as JSON.

A business metric that lives outside Prometheus: ``GET /tasks?version=canary&window=60&step=10``
answers how many tasks that version finished in the last ``window`` seconds, how many
succeeded, the success and error rates, and the same per ``step`` seconds (oldest first)::

    {"version": "canary", "window_s": 60, "step_s": 10, "tasks": 240, "succeeded": 236,
     "failed": 4, "success_rate": 0.983, "error_rate": 0.0167,
     "steps": [{"tasks": 40, "succeeded": 40, "success_rate": 1.0, "error_rate": 0.0}, ...]}

With no task in the window the rates are ``null``: there is nothing to judge. Without
``version`` it answers ``{"versions": {name: ...}}`` for every version seen.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_WINDOW_S = 600


class TaskLog:
    """Each task's end: when, which version, whether it succeeded; older than 10 min is dropped."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ends: deque[tuple[float, str, bool]] = deque()
        self._lock = threading.Lock()

    def add(self, version: str, succeeded: bool) -> None:
        now = self._clock()
        with self._lock:
            self._ends.append((now, version, succeeded))
            while self._ends and self._ends[0][0] < now - MAX_WINDOW_S:
                self._ends.popleft()

    def versions(self) -> list[str]:
        with self._lock:
            return sorted({version for _, version, _ in self._ends})

    def summary(self, version: str, window_s: float, step_s: float) -> dict[str, Any]:
        """What ``GET /tasks?version=...`` answers for one version."""
        now = self._clock()
        start = now - window_s
        count = max(int(window_s // step_s), 1)
        steps = [[0, 0] for _ in range(count)]  # tasks, succeeded
        with self._lock:
            ends = [(at, ok) for at, v, ok in self._ends if v == version and at > start]
        for at, ok in ends:
            slot = min(int((at - start) // step_s), count - 1)
            steps[slot][0] += 1
            steps[slot][1] += ok
        tasks = sum(s[0] for s in steps)
        succeeded = sum(s[1] for s in steps)
        return {
            "version": version,
            "window_s": window_s,
            "step_s": step_s,
            **_rates(tasks, succeeded),
            "steps": [_rates(n, ok) for n, ok in steps],
        }


def _rates(tasks: int, succeeded: int) -> dict[str, Any]:
    return {
        "tasks": tasks,
        "succeeded": succeeded,
        "failed": tasks - succeeded,
        "success_rate": succeeded / tasks if tasks else None,
        "error_rate": (tasks - succeeded) / tasks if tasks else None,
    }


class _TasksHandler(BaseHTTPRequestHandler):
    server: _TasksServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/tasks":
            self._send(404, {"error": "not found: use GET /tasks?version=NAME"})
            return
        query = parse_qs(url.query)
        try:
            window = _seconds(query, "window", 60.0)
            step = _seconds(query, "step", min(10.0, window))
        except ValueError as error:
            self._send(400, {"error": str(error)})
            return
        log = self.server.log
        if "version" in query:
            self._send(200, log.summary(query["version"][0], window, step))
        else:
            versions = {v: log.summary(v, window, step) for v in log.versions()}
            self._send(200, {"versions": versions})

    def _send(self, code: int, data: dict[str, Any]) -> None:
        body = (json.dumps(data) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _seconds(query: dict[str, list[str]], name: str, default: float) -> float:
    if name not in query:
        return default
    text = query[name][0].removesuffix("s")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_WINDOW_S:
        raise ValueError(f"{name}={query[name][0]!r}: use seconds from 1 to {MAX_WINDOW_S}")
    return value


class _TasksServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, log: TaskLog) -> None:
        super().__init__((host, port), _TasksHandler)
        self.log = log


def serve_tasks(log: TaskLog, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``GET /tasks`` for ``log`` on host:port (port 0: any free one) in a thread."""
    server = _TasksServer(host, port, log)
    threading.Thread(target=server.serve_forever, name="tasks", daemon=True).start()
    return server
