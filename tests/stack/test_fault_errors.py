"""`rollout dev` against a stack that is not there, or not ours, ends in one sentence and exit 1."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import devstack
from devstack.info import DEFAULT_PORTS, stack_info
from devstack.parts import SEARCH_ATTRIBUTES, missing_search_attributes
from devstack.processes import LOCALHOST, free_port
from tests.stack.conftest import missing_binaries

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


@contextlib.contextmanager
def answering(status: int, body: bytes = b"") -> Iterator[int]:
    """An HTTP server of someone else's on 127.0.0.1 that answers ``status`` and ``body`` to
    every request; its port. Stopped when the block ends."""

    class Answer(BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((LOCALHOST, 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def stranger() -> Iterator[int]:
    """An HTTP server of someone else's that answers 404 to everything; its port."""
    with answering(404) as port:
        yield port


def test_something_else_on_the_canary_port(tmp_path: Path, stranger: int) -> None:
    write_stack(tmp_path, any_ports(canary=stranger))
    line = assert_one_line_error(fault(tmp_path))
    assert "HTTP 404" in line and "rollout dev up" in line


def test_a_server_error_on_the_canary_port(tmp_path: Path) -> None:
    with answering(500, b"<html>Internal Server Error</html>") as port:
        write_stack(tmp_path, any_ports(canary=port))
        line = assert_one_line_error(fault(tmp_path))
    assert "answered" in line and "HTTP 500 Internal Server Error" in line
    assert f"rollout dev up --dir {tmp_path}" in line


def test_an_answer_that_is_not_the_demos_on_the_canary_port(tmp_path: Path) -> None:
    with answering(200, b"[1, 2, 3]") as port:
        write_stack(tmp_path, any_ports(canary=port))
        line = assert_one_line_error(fault(tmp_path))
    assert "HTTP 200 OK, not its fault" in line and "rollout dev up" in line


def test_search_attributes_unknown_when_temporal_answers_500(tmp_path: Path) -> None:
    # Cannot tell which are registered: all of them are registered again, no traceback.
    with answering(500, b'{"customAttributes": {}}') as port:
        info = stack_info(tmp_path, any_ports(temporal_http=port))
        assert missing_search_attributes(info) == SEARCH_ATTRIBUTES


def test_dev_up_in_a_folder_it_cannot_write(tmp_path: Path) -> None:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"the dev stack needs {', '.join(missing)}")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = [ROLLOUT, "dev", "up", "--dir", str(blocker / "stack")]
    env = {**os.environ, "COLUMNS": "1000"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    line = assert_one_line_error(done)
    assert f"cannot write the dev stack's files in {blocker / 'stack'}" in line
    assert "choose a folder you can write with --dir" in line
