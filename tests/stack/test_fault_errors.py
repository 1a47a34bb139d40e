"""`rollout dev fault` against a stack that is not there ends in one sentence and exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from starter import devstack
from starter.processes import LOCALHOST, free_port
from starter.stackinfo import DEFAULT_PORTS, stack_info

ROLLOUT = str(Path(sys.executable).parent / "rollout")


def fault(folder: Path) -> subprocess.CompletedProcess[str]:
    argv = [ROLLOUT, "dev", "fault", "--dir", str(folder), "--error-rate", "0.3"]
    # Wide enough that the message is not wrapped: one sentence, one line.
    env = {**os.environ, "COLUMNS": "1000"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def assert_one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def write_stack(folder: Path, ports: dict[str, int]) -> None:
    """A stack.json as `rollout dev up` leaves it, for a stack whose processes are gone."""
    folder.mkdir(parents=True, exist_ok=True)
    info = stack_info(folder, ports)
    devstack.stack_file(folder).write_text(info.model_dump_json())


def any_ports(**fixed: int) -> dict[str, int]:
    ports: dict[str, int] = {}
    for role in DEFAULT_PORTS:
        ports[role] = fixed.get(role) or free_port(avoid=ports.values())
    return ports


def test_no_stack_in_the_folder(tmp_path: Path) -> None:
    line = assert_one_line_error(fault(tmp_path / "nothing"))
    assert "rollout dev up" in line


def test_a_stack_that_is_down(tmp_path: Path) -> None:
    write_stack(tmp_path, any_ports())
    line = assert_one_line_error(fault(tmp_path))
    assert "the canary demo service at http://127.0.0.1:" in line
    assert f"rollout dev up --dir {tmp_path}" in line


class NotFound(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stranger() -> Iterator[int]:
    """An HTTP server of someone else's that answers 404 to everything; its port."""
    server = ThreadingHTTPServer((LOCALHOST, 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_something_else_on_the_canary_port(tmp_path: Path, stranger: int) -> None:
    write_stack(tmp_path, any_ports(canary=stranger))
    line = assert_one_line_error(fault(tmp_path))
    assert "HTTP 404" in line and "rollout dev up" in line
