"""Rollouts on the real stack: what HAProxy routes is the truth the tests assert on."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

import devstack
from activities.routers.haproxy import HAProxyRuntime
from client import operations
from plans import RolloutResult, RolloutState
from tests.integration.conftest import failed_with_faulty_canary, fast_plan, who_answers

pytestmark = pytest.mark.integration
TEMPORAL = str(Path(sys.executable).parent / "temporal")


async def test_healthy_canary_is_promoted_with_haproxy_weights_at_every_stage(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    plan = fast_plan(
        stack,
        [
            {"name": "twenty", "weight": 20, "bake": "6s", "check_every": "2s"},
            {"name": "sixty", "weight": 60, "bake": "6s", "check_every": "2s"},
            {"name": "full", "weight": 100, "bake": "5s", "check_every": "2s"},
        ],
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    seen: dict[int, tuple[int, int]] = {}
    while True:
        status = await operations.status(client, plan.service)
        if status.state == RolloutState.BAKING:
            split = await asyncio.to_thread(router.get_split, "stable", "canary")
            seen.setdefault(status.stage_index, (split.stable_weight, split.canary_weight))
        if status.state.final:
            break
        await asyncio.sleep(0.5)
    result = await handle.result()
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert seen == {0: (80, 20), 1: (40, 60), 2: (0, 100)}
    assert status.verdicts["error-rate"].outcome.value == "pass"
    assert (await who_answers(stack, 20)) == {"canary": 20}


async def test_faulty_canary_is_rolled_back_by_its_gate(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    plan = fast_plan(stack, [{"name": "half", "weight": 50, "bake": "2m", "check_every": "2s"}])
    cause = await failed_with_faulty_canary(stack, client, plan, 0.5)
    assert cause.type == "RolledBack"
    assert "error-rate" in cause.message and "2 check(s) in a row" in cause.message
    split = await asyncio.to_thread(router.get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (100, 0)
    # Every request through HAProxy is now answered by the stable version.
    assert (await who_answers(stack)) == {"stable": 60}
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.ROLLED_BACK and status.canary_weight == 0
    assert status.verdicts["error-rate"].value is not None
    assert status.verdicts["error-rate"].value > 0.05


async def test_operator_rollback_with_the_temporal_cli_restores_traffic(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    plan = fast_plan(stack, [{"name": "thirty", "weight": 30, "bake": "10m", "check_every": "2s"}])
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    for _ in range(60):
        if (await operations.status(client, plan.service)).state == RolloutState.BAKING:
            break
        await asyncio.sleep(0.5)
    split = await asyncio.to_thread(router.get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (70, 30)
    process = await asyncio.create_subprocess_exec(
        TEMPORAL,
        "workflow",
        "signal",
        "--address",
        stack.temporal_address,
        "--workflow-id",
        plan.workflow_id,
        "--name",
        "rollback",
        "--input",
        '{"by": "ana", "reason": "customer reports"}',
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TEMPORAL_ADDRESS": stack.temporal_address},
    )
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=60)
    assert "customer reports" in str(failure.value.cause)
    split = await asyncio.to_thread(router.get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (100, 0)
    status = await operations.status(client, plan.service)
    record = status.commands[-1]
    assert (record.kind, record.by, record.via, record.accepted) == (
        "rollback",
        "ana",
        "signal",
        True,
    )


async def test_cancelling_the_workflow_restores_traffic(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime
) -> None:
    plan = fast_plan(stack, [{"name": "forty", "weight": 40, "bake": "10m", "check_every": "2s"}])
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    # Cancel at once: the shift may still be in flight, and compensation must wait for it.
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=60)
    split = await asyncio.to_thread(router.get_split, "stable", "canary")
    assert (split.stable_weight, split.canary_weight) == (100, 0)


async def test_a_rolled_back_rollout_leaves_a_report_with_its_metrics(
    stack: devstack.StackInfo, client: Client, router: HAProxyRuntime, tmp_path: Path
) -> None:
    from activities.report.model import Report
    from activities.report.review import review
    from client.runs import report_link

    plan = fast_plan(stack, [{"name": "half", "weight": 50, "bake": "2m", "check_every": "2s"}])
    cause = await failed_with_faulty_canary(stack, client, plan, 0.5)
    assert cause.type == "RolledBack"
    # The worker wrote the report into the stack's store and linked it from the run.
    link = await report_link(client, plan.workflow_id, wait_s=30)
    assert link is not None and link.startswith("file://")
    page = Path(link.removeprefix("file://"))
    assert page.parent.parent.parent == Path(stack.dir) / "reports"
    assert page.exists() and "Incident" in page.read_text()
    report = Report.model_validate_json((page.parent / "report.json").read_text())
    assert report.state == "rolled_back" and "error-rate" in report.reason
    assert [s.weight for s in report.stages] == [50, 0]
    gate = report.gates[0]
    # Prometheus's ranges: the canary's error rate rose past the limit while it had traffic.
    assert gate.canary and max(p.value for p in gate.canary) > 0.05
    assert gate.stable and gate.limit
    assert sum(c.outcome == "fail" for c in gate.checks) >= 2
    incident = report.incident
    assert incident is not None and incident.seconds_to_restore is not None
    assert incident.metrics[0].met is False
    kinds = {e.kind for e in report.timeline}
    assert {"shift", "read back", "rollback", "end"} <= kinds
    # `rollout report` builds the same report anew from history and Prometheus.
    env = {**os.environ, "TEMPORAL_ADDRESS": stack.temporal_address, "ROLLOUT_REPORT_DIR": ""}
    out = tmp_path / "again"
    rollout = str(Path(sys.executable).parent / "rollout")
    command = [rollout, "report", plan.service, "--format", "json", "--out", str(out)]
    proc = await asyncio.create_subprocess_exec(*command, env=env)
    assert await asyncio.wait_for(proc.wait(), timeout=120) == 0
    again = Report.model_validate_json((out / "report.json").read_text())
    assert again.incident is not None and again.state == "rolled_back"
    assert [s.weight for s in again.stages] == [50, 0]
    # The review counts it among the stack's rollouts, with its failing gate.
    since = report.started_at - timedelta(minutes=1)
    found = await review(client, since, since + timedelta(minutes=10), None)
    mine = [r for r in found.rollouts if r.workflow_id == plan.workflow_id]
    assert [r.state for r in mine] == ["rolled_back"]
    assert found.failing_gates.get("error-rate", 0) >= 2
