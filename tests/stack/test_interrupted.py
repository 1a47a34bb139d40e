"""SIGTERM while the dev stack starts, or while a block using it runs, leaves nothing running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from devstack.processes import pid_alive
from tests.stack.conftest import missing_binaries

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ROLLOUT = str(Path(sys.executable).parent / "rollout")


@pytest.fixture(autouse=True)
def stack_binaries() -> None:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"the dev stack needs {', '.join(missing)} on this machine")


def recorded_pids(folder: Path) -> dict[str, int]:
    try:
        data = json.loads((folder / "stack.json").read_text())
    except (OSError, ValueError):
        return {}
    pids: dict[str, int] = data.get("pids", {})
    return pids


def strays(folder: Path) -> list[str]:
    """Live processes whose command line names the folder: what a stack in it would run."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(folder) in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{process.info['pid']}: {cmdline}")
    return found


def wait_for(condition: object, proc: subprocess.Popen[bytes], what: str) -> None:
    """Poll until condition() holds; fail (by the test's timeout) if proc ends first."""
    assert callable(condition)
    while not condition():
        assert proc.poll() is None, f"ended before {what}"
        time.sleep(0.05)


def end(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM proc and wait for it; SIGKILL by pid in cleanup if it were still running."""
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def assert_nothing_left(folder: Path) -> None:
    pids = recorded_pids(folder)
    assert pids, "no process was recorded: the signal came too early to test anything"
    assert not [name for name, pid in pids.items() if pid_alive(pid)]
    assert strays(folder) == []


def test_sigterm_while_dev_up_starts_stops_what_it_started(tmp_path: Path) -> None:
    folder = tmp_path / "stack"
    proc = subprocess.Popen(
        [ROLLOUT, "dev", "up", "--dir", str(folder)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # Temporal is the first process started; the stack is still far from ready then.
    wait_for(lambda: "temporal" in recorded_pids(folder), proc, "starting temporal")
    code = end(proc)
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    assert json.loads((folder / "stack.json").read_text())["state"] == "down"
    assert_nothing_left(folder)


SCRIPT = """
import sys
from pathlib import Path

import devstack

with devstack.running(Path(sys.argv[1]), with_worker=False):
    print("up", flush=True)
    sys.stdin.read()
"""


def test_sigterm_in_a_running_block_stops_the_whole_stack(tmp_path: Path) -> None:
    folder = tmp_path / "stack"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(folder)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = b""
    try:
        line = proc.stdout.readline()
    finally:
        if not line:
            end(proc)
    assert line == b"up\n", proc.stderr.read().decode() if proc.stderr else ""
    assert all(pid_alive(pid) for pid in recorded_pids(folder).values())
    code = end(proc)
    assert code != 0
    assert proc.stdin is not None
    proc.stdin.close()
    assert_nothing_left(folder)
