"""The worker refuses to start while runs of another history version run on its task queue.

On a real dev server: a run whose first task was done under an older version's memo, or
before runs carried one, stops `rollout-worker` with exit code 3 and names the run; a run of
this version, or one no worker has touched yet (whatever its start said), lets it start.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from plans.runtime.versions import HISTORY_MEMO_KEY, HISTORY_VERSION
from worker.main import EXIT_OTHER_VERSIONS, EXIT_STOPPED

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent.parent


@workflow.defn(name="TargetLease")
class LeaseOfVersionOne:
    """A stand-in for a lease recorded before runs carried their history version."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn(name="RolloutWorkflow")
class RolloutOfVersionOne:
    """A stand-in for a rollout whose first task an older worker did."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def older_run(
    client: Client, queue: str, stand_in: Any, workflow_id: str, memo: dict[str, Any] | None
) -> str:
    """Start ``stand_in`` and let an older worker (no version of its own) do its first task."""
    async with Worker(
        client, task_queue=queue, workflows=[stand_in], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        handle = await client.start_workflow(
            stand_in.run, id=workflow_id, task_queue=queue, memo=memo
        )
        await first_task_done(client, workflow_id)
    return handle.result_run_id or ""


@pytest.fixture
async def server() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        ui=False,
    ) as env:
        yield env


def worker_env(server: WorkflowEnvironment, queue: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": server.client.service_client.config.target_host,
        "ROLLOUT_TASK_QUEUE": queue,
        "ROLLOUT_NOTIFY_DIR": str(tmp_path / "notices"),
        "ROLLOUT_REPORT_DIR": str(tmp_path / "reports"),
        "ROLLOUT_WORKER_METRICS": "",
    }


async def refused(server: WorkflowEnvironment, queue: str, tmp_path: Path) -> str:
    """Run the worker, which must end refusing; what it said."""
    done = await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "rollout-worker")],
        env=worker_env(server, queue, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == EXIT_OTHER_VERSIONS, done.stderr
    return done.stderr


async def first_task_done(client: Client, workflow_id: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(200):
        kinds = [e.event_type async for e in handle.fetch_history_events()]
        if EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in kinds:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id} never finished a workflow task")


async def test_a_run_of_an_older_version_stops_the_worker(
    server: WorkflowEnvironment, tmp_path: Path
) -> None:
    queue = f"drain-{uuid.uuid4().hex[:6]}"
    old_id = f"rollout-old-{queue}"
    memo = {HISTORY_MEMO_KEY: HISTORY_VERSION - 1}
    run_id = await older_run(server.client, queue, RolloutOfVersionOne, old_id, memo)
    said = await refused(server, queue, tmp_path)
    assert f"{old_id} (run {run_id}, RolloutWorkflow): version {HISTORY_VERSION - 1}" in said
    assert f"on task queue {queue!r}" in said
    assert "Let them finish" in said and "docs/upgrading.md" in said
    assert "--drain-check off" in said
    await server.client.get_workflow_handle(old_id).terminate("test over")


async def test_a_run_recorded_before_versions_stops_the_worker(
    server: WorkflowEnvironment, tmp_path: Path
) -> None:
    queue = f"drain-{uuid.uuid4().hex[:6]}"
    lease_id = f"lease-{queue}"
    await older_run(server.client, queue, LeaseOfVersionOne, lease_id, None)
    said = await refused(server, queue, tmp_path)
    assert f"{lease_id} (run " in said and "version 1 (no history_version)" in said
    await server.client.get_workflow_handle(lease_id).terminate("test over")


async def test_runs_of_this_version_and_untouched_runs_let_it_start(
    server: WorkflowEnvironment, tmp_path: Path
) -> None:
    queue = f"drain-{uuid.uuid4().hex[:6]}"
    ours = await server.client.start_workflow(
        "FreezeCalendar",
        id=f"ours-{queue}",
        task_queue=queue,
        memo={HISTORY_MEMO_KEY: HISTORY_VERSION},
    )
    # Started by a client without the memo, or an older one's, and no worker has run them
    # yet: nothing to replay.
    fresh = await server.client.start_workflow(
        "FreezeCalendar", id=f"fresh-{queue}", task_queue=queue
    )
    claimed = await server.client.start_workflow(
        "FreezeCalendar", id=f"claimed-{queue}", task_queue=queue, memo={HISTORY_MEMO_KEY: 1}
    )
    # Another queue's runs are another worker's business.
    elsewhere = await server.client.start_workflow(
        "RolloutWorkflow",
        id=f"elsewhere-{queue}",
        task_queue=f"{queue}-other",
        memo={HISTORY_MEMO_KEY: 1},
    )
    process = subprocess.Popen(
        [str(BIN / "rollout-worker")],
        env=worker_env(server, queue, tmp_path),
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stderr is not None
        lines: list[str] = []
        while not any("worker polling task queue" in line for line in lines):
            line = await asyncio.wait_for(asyncio.to_thread(process.stderr.readline), 120)
            assert line, "".join(lines)
            lines.append(line)
        # The worker runs the untouched runs, which then record its version themselves.
        for handle in (fresh, claimed):
            for _ in range(200):
                memo = await (await handle.describe()).memo()
                if memo.get(HISTORY_MEMO_KEY) == HISTORY_VERSION:
                    break
                await asyncio.sleep(0.05)
            assert memo.get(HISTORY_MEMO_KEY) == HISTORY_VERSION
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == EXIT_STOPPED
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for handle in (ours, fresh, claimed, elsewhere):
        await handle.terminate("test over")
