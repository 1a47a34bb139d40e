"""Malformed signal bodies sent with the real `temporal` CLI: refused, recorded, the run goes on.

The CLI itself refuses to send text that is not JSON with the default json/plain encoding
("input #1 is not valid JSON"); with ``--input-meta encoding=binary/plain`` the same bytes
reach the workflow, as bytes. Both are covered, plus a raw undecodable payload sent with the
SDK, which the CLI cannot produce.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError

import devstack
from client import operations
from plans import RolloutState
from tests.faults.chaos import baking, haproxy, quick_plan, temporal_cli, until
from tests.faults.conftest import clean_router, client, launched, stack, stack_dir

__all__ = ["clean_router", "client", "launched", "stack", "stack_dir"]

pytestmark = pytest.mark.integration

BODY_HINT = "body must be a JSON object"


async def signal(stack: devstack.StackInfo, workflow_id: str, name: str, *flags: str) -> str:
    """Send a signal with the temporal CLI; return its stderr (it must succeed)."""
    code, _, error = await temporal_cli(
        stack, "workflow", "signal", "--workflow-id", workflow_id, "--name", name, *flags
    )
    assert code == 0, error
    return error


async def rolling(stack: devstack.StackInfo, client: Client, launched: list[str]) -> str:
    plan = quick_plan(stack, [{"name": "a", "weight": 10, "bake": "10m", "check_every": "2s"}])
    await operations.start_rollout(client, plan, stack.task_queue)
    launched.append(plan.workflow_id)
    await until(client, plan.service, baking(0), what="baking at 10%")
    return plan.service


async def test_malformed_bodies_are_recorded_as_refused_and_the_run_goes_on(
    stack: devstack.StackInfo, client: Client, launched: list[str], tmp_path: Path
) -> None:
    service = await rolling(stack, client, launched)
    workflow_id = operations.workflow_id(service)

    # Not JSON at all: the CLI will not send it as JSON...
    code, _, error = await temporal_cli(
        stack, "workflow", "signal", "--workflow-id", workflow_id, "--name", "pause",
        "--input", "pause now please",
    )  # fmt: skip
    assert code != 0 and "not valid JSON" in error
    # ...but as raw bytes it gets through, and is refused by the workflow.
    await signal(
        stack, workflow_id, "pause", "--input", "pause now {", "--input-meta",
        "encoding=binary/plain",
    )  # fmt: skip
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"by": "b" * 1_000_000, "reason": "r" * 1_000_000}))
    bodies = [
        ("pause", ["--input", '"pause"']),
        ("pause", ["--input", "[1, 2, 3]"]),
        ("pause", ["--input", "42"]),
        ("pause", ["--input", '{"by": 5, "reason": "typed wrong"}']),
        ("pause", ["--input", '{"by": "ana", "reason": ["not", "text"]}']),
        ("rollback", ["--input", '{"by": {"nested": true}}']),
        ("pause", ["--input-file", str(huge)]),
    ]
    for name, flags in bodies:
        await signal(stack, workflow_id, name, *flags)
    status = await until(
        client, service, lambda s: len(s.commands) >= 1 + len(bodies), what="every body recorded"
    )
    assert len(status.commands) == 1 + len(bodies)
    for record in status.commands:
        assert record.accepted is False and record.via == "signal"
        assert BODY_HINT in record.note and len(record.note) < 500, record.note
        assert len(record.by) <= 200 and len(record.reason) <= 2000
    assert [c.kind for c in status.commands] == ["pause"] + [name for name, _ in bodies]
    # Nothing changed: still baking at 10%, and the status stays small.
    assert status.state == RolloutState.BAKING and not status.paused
    assert len(status.model_dump_json()) < 50_000
    split = await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
    assert split.canary_weight == 10

    # Too big for the server: the CLI says so, the run never sees it.
    too_big = tmp_path / "too-big.json"
    too_big.write_text(json.dumps({"by": "x", "reason": "r" * 3_000_000}))
    code, _, error = await temporal_cli(
        stack, "workflow", "signal", "--workflow-id", workflow_id, "--name", "pause",
        "--input-file", str(too_big),
    )  # fmt: skip
    assert code != 0 and "size exceeds limit" in error

    # The run still obeys a well-formed command.
    await signal(stack, workflow_id, "rollback", "--input", '{"by": "ana", "reason": "done"}')
    handle = client.get_workflow_handle(workflow_id)
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=60)
    final = await operations.status(client, service)
    assert final.state == RolloutState.ROLLED_BACK
    assert (final.commands[-1].by, final.commands[-1].accepted) == ("ana", True)
    split = await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
    assert split.canary_weight == 0


async def test_an_undecodable_payload_leaves_the_run_going(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    service = await rolling(stack, client, launched)
    handle = client.get_workflow_handle(operations.workflow_id(service))
    raw = Payload(metadata={"encoding": b"json/plain"}, data=b"{not json")
    await client.workflow_service.signal_workflow_execution(
        _signal_request(client, handle.id, "pause", raw)
    )
    await handle.signal("pause", {"by": "ana", "reason": "after the garbage"})
    status = await until(client, service, lambda s: s.paused, what="paused by the good signal")
    assert status.commands[-1].by == "ana" and status.commands[-1].accepted


@pytest.mark.xfail(
    strict=True,
    reason="a payload the SDK cannot decode is dropped by the SDK before the handler runs, so"
    " it is not recorded among the run's commands",
    raises=AssertionError,
)
async def test_an_undecodable_payload_is_recorded_as_refused(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    service = await rolling(stack, client, launched)
    handle = client.get_workflow_handle(operations.workflow_id(service))
    raw = Payload(metadata={"encoding": b"json/plain"}, data=b"{not json")
    await client.workflow_service.signal_workflow_execution(
        _signal_request(client, handle.id, "pause", raw)
    )
    await handle.signal("resume", {"by": "ana", "reason": "marker"})
    status = await until(client, service, lambda s: any(c.by == "ana" for c in s.commands))
    assert [c.kind for c in status.commands] == ["pause", "resume"]


async def test_a_signal_with_two_inputs_is_refused_and_a_rollback_still_works(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    service = await rolling(stack, client, launched)
    workflow_id = operations.workflow_id(service)
    await signal(stack, workflow_id, "pause", "--input", '{"by": "a"}', "--input", '{"by": "b"}')
    await signal(stack, workflow_id, "rollback", "--input", '{"by": "ana", "reason": "undo"}')
    deadline = asyncio.get_running_loop().time() + 8
    weight = 10
    while asyncio.get_running_loop().time() < deadline:
        weight = (
            await asyncio.to_thread(haproxy(stack).get_split, "stable", "canary")
        ).canary_weight
        if weight == 0:
            break
        await asyncio.sleep(0.2)
    assert weight == 0, "the rollback never restored traffic"


def _signal_request(client: Client, workflow_id: str, name: str, payload: Payload):  # type: ignore[no-untyped-def]
    from temporalio.api.common.v1 import Payloads, WorkflowExecution
    from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest

    return SignalWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        signal_name=name,
        input=Payloads(payloads=[payload]),
        identity="fuzz-tests",
    )
