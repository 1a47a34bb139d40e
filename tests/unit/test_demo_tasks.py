"""The demo's task outcomes endpoint, the business metric a web gate reads."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from demo.tasks import TaskLog, serve_tasks


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[TaskLog, Clock, str]]:
    clock = Clock()
    log = TaskLog(clock)
    server = serve_tasks(log, 0)
    try:
        yield log, clock, f"http://127.0.0.1:{server.server_port}/tasks"
    finally:
        server.shutdown()
        server.server_close()


def test_counts_per_version_over_the_window_and_per_step(served) -> None:
    log, clock, url = served
    clock.now = 950.0
    for ok in (True, True, False):
        log.add("canary", ok)
    log.add("stable", True)
    clock.now = 925.0
    log.add("canary", True)  # 75 s before the question: outside a 60 s window
    clock.now = 1000.0
    answer = httpx.get(url, params={"version": "canary", "window": "60", "step": "20"}).json()
    assert (answer["tasks"], answer["succeeded"], answer["failed"]) == (3, 2, 1)
    assert answer["success_rate"] == pytest.approx(2 / 3)
    assert answer["error_rate"] == pytest.approx(1 / 3)
    assert [s["tasks"] for s in answer["steps"]] == [3, 0, 0]
    assert answer["steps"][1]["success_rate"] is None
    both = httpx.get(url).json()["versions"]
    assert set(both) == {"canary", "stable"}
    assert both["stable"]["success_rate"] == 1.0


def test_no_task_means_no_rate_and_bad_windows_say_what_to_send(served) -> None:
    _, _, url = served
    empty = httpx.get(url, params={"version": "canary"}).json()
    assert empty["tasks"] == 0 and empty["success_rate"] is None
    refused = httpx.get(url, params={"version": "canary", "window": "0"})
    assert refused.status_code == 400
    assert "use seconds from 1 to 600" in refused.json()["error"]
    assert httpx.get(url.replace("/tasks", "/nope")).status_code == 404
