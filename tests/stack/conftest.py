"""Fixtures for the dev-stack tests: one real stack per module, always stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import devstack
from devstack.info import ALERT_PORTS, DEFAULT_PORTS
from devstack.processes import LOCALHOST

# The stacks tests start in-process take any free ports, never the dev stack's defaults: a
# fault test that restarts one of its servers must find the server's port free again, and
# a `rollout dev up` in a test running beside it (which prefers the defaults) could take a
# default port in the moment it is down.
ANY_PORTS = dict.fromkeys([*DEFAULT_PORTS, *ALERT_PORTS], 0)


def missing_binaries() -> list[str]:
    """Names of the servers the real stack needs but this machine lacks."""
    temporal = Path(sys.executable).parent / "temporal"
    found = {
        "temporal": temporal.exists() or shutil.which("temporal") is not None,
        "haproxy": Path("/usr/sbin/haproxy").exists() or shutil.which("haproxy") is not None,
        "prometheus": shutil.which("prometheus") is not None,
    }
    return [name for name, present in found.items() if not present]


def require_stack(missing: list[str] | None = None) -> None:
    """Skip the test where a server the real stack needs is missing (``missing`` adds to
    what this machine lacks); on CI, fail it instead: there the bootstrap installs them."""
    lacking = [*missing_binaries(), *(missing or [])]
    if lacking:
        message = f"the real stack needs {', '.join(lacking)}: run scripts/bootstrap.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def require_alertmanager() -> None:
    """``require_stack`` for a stack with Alertmanager too (`rollout dev up --alerts`)."""
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    require_stack([] if found else ["prometheus-alertmanager"])


@contextlib.contextmanager
def real_stack(directory: Path, **options: Any) -> Iterator[devstack.StackInfo]:
    """The whole dev stack in ``directory`` with its worker on any free ports (``options``
    as ``devstack.running`` takes them), stopped when the block ends and when pytest is
    stopped by SIGTERM; skipped where a server is missing (``require_stack``)."""
    require_stack()
    with devstack.running(directory, with_worker=True, ports=ANY_PORTS, **options) as info:
        yield info


@contextlib.contextmanager
def holding(port: int) -> Iterator[None]:
    """Keep a listener on port (if it is free at all), so the stack must choose another."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(OSError):
            listener.bind((LOCALHOST, port))
            listener.listen()
        yield
    finally:
        listener.close()


@pytest.fixture
def stack_binaries() -> None:
    """Skip the test when the machine lacks a server the real stack needs."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"the dev stack needs {', '.join(missing)} on this machine")


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="module")
def stack(stack_dir: Path) -> Iterator[devstack.StackInfo]:
    """A running stack without a worker; its default app port was taken, so it chose another."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"the dev stack needs {', '.join(missing)} on this machine")
    try:
        with holding(DEFAULT_PORTS["app"]):
            info = devstack.up(stack_dir, with_worker=False)
        yield info
    finally:
        devstack.down(stack_dir)
