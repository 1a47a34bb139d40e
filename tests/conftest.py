"""What holds for the whole suite: the order it runs in, where workers write files, and an
operator without a key of their own.

With two pytest workers taking whole modules (scripts/test.sh), a long fault module left
for last would keep one worker busy while the other has nothing to do; so the modules that
wait longest on real servers go first, and the quick unit and workflow modules at the end
fill in. Each module keeps its own order.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

FIRST = ("faults", "integration", "stack", "benchmarks")


def _rank(item: pytest.Item) -> int:
    parts = item.path.parts
    for rank, folder in enumerate(FIRST):
        if folder in parts:
            return rank
    return len(FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: each module's tests keep their order


def _set(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def _environment(changes: dict[str, str | None]) -> Iterator[None]:
    """These variables set (None: unset) for the block, and as they were afterwards."""
    before = {name: os.environ.get(name) for name in changes}
    _set(changes)
    try:
        yield
    finally:
        _set(before)


@pytest.fixture(scope="session", autouse=True)
def report_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Workers the tests start write their rollouts' reports here, never into the checkout.

    A worker without ``ROLLOUT_REPORT_DIR`` writes to ./rollout-reports; the variable set
    here reaches every worker process a test spawns (the dev stack's set their own).
    """
    folder = tmp_path_factory.mktemp("reports")
    with _environment({"ROLLOUT_REPORT_DIR": str(folder)}):
        yield folder


@pytest.fixture(scope="session", autouse=True)
def notice_record(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Workers and notify activities the tests run keep the record of sent messages here.

    Without ``ROLLOUT_NOTIFY_DIR`` they would keep it in the user's state folder, under the
    home folder; the variable set here reaches every worker process a test spawns.
    """
    folder = tmp_path_factory.mktemp("notices")
    with _environment({"ROLLOUT_NOTIFY_DIR": str(folder)}):
        yield folder


@pytest.fixture(scope="session", autouse=True)
def operator_without_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite acts as an operator with no SSH key of their own, wherever it runs.

    `rollout` signs with the first key it finds: ``ROLLOUT_SIGNING_KEY``, an ssh-agent's,
    ``~/.ssh/id_ed25519``, else the key of the dev stack in ``./.rollout``, which the demo
    leaves there. A test that means an unsigned command, or a key of its own, would
    otherwise sign with the developer's. Every process a test spawns inherits this.
    """
    folder = tmp_path_factory.mktemp("operator")
    (folder / "home").mkdir()
    keyless = {"HOME": str(folder / "home"), "ROLLOUT_DIR": str(folder / "no-stack")}
    with _environment({**keyless, "SSH_AUTH_SOCK": None, "ROLLOUT_SIGNING_KEY": None}):
        yield
