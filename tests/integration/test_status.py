"""`rollout status` with no worker answering: Temporal's own records at once, then the query."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from plans import RolloutState
from tests.faults.chaos import OwnWorker
from tests.integration.conftest import fast_plan

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXIT_FROM_RECORDS = 5
# The status answers within 2 s; the bound leaves room for a busy machine and the CLI's own
# start-up, and stays well under the 10 s the status used to wait before failing.
ANSWER_BOUND_S = 6.0


@pytest.fixture
def worker(stack: devstack.StackInfo, tmp_path: Path) -> Iterator[OwnWorker]:
    own = OwnWorker(stack, f"status-{uuid.uuid4().hex[:8]}", {}, tmp_path / "worker.log")
    own.start()
    try:
        yield own
    finally:
        own.stop()


async def launch(stack: devstack.StackInfo, *args: str) -> asyncio.subprocess.Process:
    """Start the `rollout` CLI with the stack's environment."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": stack.temporal_address,
        "TEMPORAL_NAMESPACE": stack.namespace,
        "ROLLOUT_DIR": stack.dir,
        "COLUMNS": "200",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )


async def rollout(stack: devstack.StackInfo, *args: str) -> tuple[int, str, str, float]:
    """Run the `rollout` CLI to its end: exit code, stdout, stderr, seconds."""
    started = time.monotonic()
    process = await launch(stack, *args)
    out, err = await process.communicate()
    assert process.returncode is not None
    took = time.monotonic() - started
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace"), took


async def status_json(stack: devstack.StackInfo, service: str) -> tuple[int, dict[str, Any]]:
    code, out, err, _ = await rollout(stack, "status", service, "--json")
    assert out, err
    return code, json.loads(out)


async def checked(client: Client, service: str) -> None:
    """Until the rollout bakes and its gate was checked once."""
    for _ in range(120):
        status = await operations.status(client, service)
        if status.state == RolloutState.BAKING and status.verdicts:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{service} never baked with a gate check")


async def finish(client: Client, workflow_id: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    with contextlib.suppress(RPCError):
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("the test ended")


async def test_status_with_the_worker_killed_shows_temporals_records_then_the_query_again(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime, worker: OwnWorker
) -> None:
    plan = fast_plan(stack, [{"name": "quarter", "weight": 25, "bake": "10m", "check_every": "2s"}])
    handle = await operations.start_rollout(client, plan, worker.task_queue)
    watch: asyncio.subprocess.Process | None = None
    try:
        await checked(client, plan.service)
        code, live = await status_json(stack, plan.service)
        assert code == 0 and live["source"] == "query"
        assert live["bake_clock_running"] is True and live["as_of"]

        await asyncio.to_thread(worker.kill)
        code, out, err, took = await rollout(stack, "status", plan.service)
        assert code == EXIT_FROM_RECORDS, err
        assert took < ANSWER_BOUND_S
        assert "Timeout expired" not in out + err
        assert f"{plan.service} v2  from Temporal's records" in out
        assert "last published: baking  stage 'quarter'  canary 25%" in out
        assert f"no worker answered on task queue {worker.task_queue!r}" in out
        assert "its last poll was at" in out
        assert "last events in history" in out and "next check of stage 'quarter'" in out

        code, records = await status_json(stack, plan.service)
        assert code == EXIT_FROM_RECORDS
        assert records["source"] == "records"
        assert (records["state"], records["stage"], records["canary_weight"]) == (
            "baking",
            "quarter",
            25,
        )
        assert records["execution_status"] == "running"
        assert records["task_queue"] == worker.task_queue and records["last_poll_at"]
        assert records["run_id"] == handle.result_run_id
        assert records["events"] and records["last_verdicts"][0]["gate"] == "error-rate"

        # A watch started during the outage keeps going, and says when the worker is back.
        watch = await launch(stack, "status", plan.service, "--watch")
        await asyncio.sleep(4)
        assert watch.returncode is None

        await asyncio.to_thread(worker.start)
        for _ in range(40):
            code, back = await status_json(stack, plan.service)
            if back["source"] == "query":
                break
            await asyncio.sleep(0.5)
        assert code == 0 and back["source"] == "query"
        assert back["state"] == "baking" and back["canary_weight"] == 25

        # Once rolled back, the status shows no bake clock and a late command says why.
        await handle.signal("rollback", {"by": "ana", "reason": "status test"})
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), timeout=60)
        out_bytes, err_bytes = await asyncio.wait_for(watch.communicate(), timeout=30)
        watched = out_bytes.decode(errors="replace")
        assert watch.returncode == 3, err_bytes.decode(errors="replace")
        assert "worker back at" in watched and "rolled back" in watched
        code, out, err, _ = await rollout(stack, "approve", plan.service, "--reason", "late")
        assert code == 1
        said = " ".join(err.split())
        assert f"approve: rollout of {plan.service} has ended (rolled back: " in said
        assert "status test)" in said and "(failed)" not in said
        # The worker replays the ended run before it answers, which a busy machine makes slow.
        code, out, err, _ = await rollout(stack, "status", plan.service)
        assert code == 0, out + err
        assert "rolled back" in out and "/10m" not in out
    finally:
        if watch is not None and watch.returncode is None:
            watch.kill()
            await watch.wait()
        await finish(client, plan.workflow_id)


async def test_status_of_a_run_no_worker_ever_polled_does_not_wait_for_one(
    stack: devstack.StackInfo, client: Client
) -> None:
    plan = fast_plan(stack, [{"name": "quarter", "weight": 25, "bake": "10m", "check_every": "2s"}])
    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    await operations.start_rollout(client, plan, queue)
    try:
        code, out, err, took = await rollout(stack, "status", plan.service, "--json")
        assert code == EXIT_FROM_RECORDS, err
        assert took < ANSWER_BOUND_S
        records = json.loads(out)
        assert records["source"] == "records" and records["execution_status"] == "running"
        # Nobody polls, so the query was not sent at all (it would say "within 1.5s").
        assert records["worker"] == f"no worker has polled task queue {queue!r}"
        assert records["pollers"] == [] and records["state"] is None
        assert records["workflow_task_waiting_since"] is not None
        assert [line["kind"] for line in records["events"]] == ["workflow execution started"]
    finally:
        await finish(client, plan.workflow_id)
