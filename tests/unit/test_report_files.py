"""The report's files: written whole (never a mix of two writers), 0640 in folders of 0750,
and drawn without holding up the worker's event loop."""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from activities.report.model import Report
from activities.report.render import folder_for, store, write
from tests.unit.test_report import report_of


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that takes nothing away: the modes must come from the writer, not from it."""
    before = os.umask(0)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


async def test_report_files_are_0640_in_folders_of_0750(tmp_path: Path, open_umask: None) -> None:
    report = await report_of("rolled_back.json")
    root = tmp_path / "store"
    written = await store(report, root, "ROLLOUT_REPORT_DIR")
    folder = folder_for(root, report)
    assert set(written) == {"md", "html", "json"}
    files = [*written.values(), *folder.glob("gate-*.png")]
    assert len(files) == 3 + len(report.gates)
    assert all(path.parent == folder for path in files)
    assert {path.name: mode(path) for path in files} == {path.name: 0o640 for path in files}
    for made in (folder, folder.parent, root):
        assert mode(made) == 0o750, made
    # Nothing is left behind by the temporary files the writes went through.
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in files)


async def big(name: str, copies: int) -> Report:
    """A report whose JSON is large, so that a write takes long enough to be met midway."""
    report = await report_of(name)
    report.timeline = report.timeline * copies
    return report


async def test_two_writers_at_once_leave_one_whole_report(tmp_path: Path) -> None:
    first, second = await big("rolled_back.json", 400), await big("promoted.json", 250)
    expected = {
        write(r, tmp_path / name, ("json",))["json"].read_bytes()
        for r, name in ((first, "first"), (second, "second"))
    }
    assert len(expected) == 2 and min(len(text) for text in expected) > 200_000
    folder = tmp_path / "same"
    target = folder / "report.json"
    torn: list[int] = []
    reads = 0
    writing = threading.Event()

    def read_while_written() -> None:
        # A reader (a person, a tool) may open the file at any moment: never half of it.
        nonlocal reads
        while writing.is_set():
            try:
                text = target.read_bytes()
            except FileNotFoundError:
                continue
            reads += 1
            if text not in expected:
                torn.append(len(text))

    def writer(report: Report, start: threading.Barrier) -> None:
        start.wait()
        write(report, folder, ("json",))

    writing.set()
    reader = threading.Thread(target=read_while_written)
    reader.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            for _ in range(40):
                start = threading.Barrier(2)
                for run in [pool.submit(writer, r, start) for r in (first, second)]:
                    run.result()
                assert target.read_bytes() in expected
    finally:
        writing.clear()
        reader.join()
    assert reads > 0
    assert torn == [], f"{len(torn)} of {reads} reads found a file that was neither report"


async def test_plots_are_drawn_off_the_event_loop(tmp_path: Path) -> None:
    one = await report_of("rolled_back.json")
    gate = one.gates[0]
    report = one.model_copy(
        update={"gates": [gate.model_copy(update={"gate": f"gate-{i}"}) for i in range(20)]}
    )
    ticks: list[float] = []
    drawing = True

    async def tick() -> None:
        # Another task of the worker (a workflow task, another activity) wanting the loop.
        while drawing:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    began = time.monotonic()
    written = await store(report, tmp_path / "store", "ROLLOUT_REPORT_DIR")
    ended = time.monotonic()
    drawing = False
    await ticker
    assert len(list(written["md"].parent.glob("gate-*.png"))) == 20
    took = ended - began
    during = [began, *(t for t in ticks if began <= t <= ended), ended]
    longest_gap = max(b - a for a, b in itertools.pairwise(during))
    # Drawn on the loop, the ticker would stand still from the first plot to the last: one
    # gap as long as the whole drawing. Drawn in a thread, it keeps ticking meanwhile.
    assert len(during) - 2 >= 5, f"the loop ticked {len(during) - 2} times in {took:.2f} s"
    assert longest_gap < took / 2, f"the loop stood still {longest_gap:.2f} s of {took:.2f} s"
