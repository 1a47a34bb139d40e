"""Scripts on the real stack: each command's `--json` against its kept schema (exit codes as
without it), and the Python API's example in docs/python-api.md run as a program."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client

import devstack
from client import operations
from plans import CommandKind, OperatorCommand, RolloutError, RolloutState
from tests.integration.conftest import fast_plan
from tests.integration.test_status import ROOT, rollout
from tests.json_schemas import check, check_lines

pytestmark = pytest.mark.integration

QUICK = [
    {"name": "ten", "weight": 10, "bake": "6s", "check_every": "2s"},
    {"name": "full", "weight": 100, "bake": "6s", "check_every": "2s"},
]
LONG = [
    {"name": "ten", "weight": 10, "bake": "5m", "check_every": "2s"},
    {"name": "full", "weight": 100, "bake": "6s", "check_every": "2s"},
]


def plan_file(stack: devstack.StackInfo, folder: Path, stages: list[dict[str, Any]]) -> Path:
    """A plan on the stack for a new service, written to a file; its path."""
    service = f"js-{uuid.uuid4().hex[:6]}"
    plan = fast_plan(stack, stages).model_copy(update={"service": service})
    path = folder / f"{service}.yaml"
    path.write_text(yaml.safe_dump(plan.model_dump(mode="json", exclude_none=True)))
    return path


async def ended(client: Client, service: str) -> RolloutState:
    """Wait until the rollout ends (its target free for the next test); its last state."""
    for _ in range(240):
        status = await operations.status(client, service)
        if status.state.final:
            return status.state
        await asyncio.sleep(0.5)
    raise AssertionError(f"{service} did not end")


async def json_of(stack: devstack.StackInfo, name: str, *args: str, code: int = 0) -> Any:
    """Run `rollout ARGS... --json`; its output checked against ``name``'s schema."""
    done, out, err, _ = await rollout(stack, *args, "--json")
    assert done == code, f"rollout {' '.join(args)} --json exited {done}: {err}"
    return check(name, out)


async def test_a_rollout_steered_and_read_as_json(
    stack: devstack.StackInfo, client: Client, tmp_path: Path
) -> None:
    assert await json_of(stack, "setup", "setup") == {
        "added": [],
        "attributes": sorted(operations.SEARCH_ATTRIBUTES),
    }
    path = plan_file(stack, tmp_path, LONG)
    service = path.stem
    started = await json_of(stack, "start", "start", str(path))
    assert started["kind"] == "rollout" and started["service"] == service
    assert started["workflow_id"] == f"rollout-{service}" and started["run_id"]
    assert started["target_claimed"] is True
    assert started["ui_url"].endswith(f"/workflows/rollout-{service}")
    try:
        status = await json_of(stack, "status", "status", service)
        assert status["service"] == service and status["source"] in ("query", "records")

        for _ in range(60):  # visibility lags behind the start a little
            listed = await json_of(stack, "list", "list", "--query", f'RolloutService="{service}"')
            if listed["rollouts"]:
                break
            await asyncio.sleep(0.5)
        [found] = listed["rollouts"]
        assert found["service"] == service and found["workflow_id"] == f"rollout-{service}"

        paused = await json_of(
            stack, "command", "pause", service, "--reason", "a look", "--by", "ci"
        )
        assert paused["scope"] == "rollout" and paused["service"] == service
        assert paused["record"]["kind"] == "pause" and paused["record"]["accepted"] is True
        assert paused["record"]["by"] == "ci" and paused["record"]["reason"] == "a look"
        resumed = await json_of(stack, "command", "resume", service, "--by", "ci")
        assert resumed["record"]["kind"] == "resume"
        rolled = await json_of(stack, "command", "rollback", service, "--reason", "enough")
        assert rolled["record"]["kind"] == "rollback"
    finally:
        if not (await operations.status(client, service)).state.final:
            stop = OperatorCommand(kind=CommandKind.ROLLBACK, by="test", reason="the test ended")
            with contextlib.suppress(RolloutError):
                await operations.send_command(client, service, stop)
    assert await ended(client, service) == RolloutState.ROLLED_BACK
    # Refused: exit 1 as ever, the reason on standard error, nothing on standard output.
    code, out, err, _ = await rollout(stack, "pause", service, "--json")
    assert code == 1 and out == "" and "has ended" in err


async def test_start_follow_json_lines_then_the_report(
    stack: devstack.StackInfo, client: Client, tmp_path: Path
) -> None:
    path = plan_file(stack, tmp_path, QUICK)
    service = path.stem
    code, out, err, _ = await rollout(stack, "start", str(path), "--follow", "--json")
    assert code == 0, err
    first, *rest = out.splitlines()
    assert check("start", first)["service"] == service
    statuses = check_lines("status", "\n".join(rest))
    assert statuses and all(s["source"] == "query" for s in statuses)
    assert statuses[-1]["state"] == "promoted"
    assert {s["stage_name"] for s in statuses} >= {"ten", "full"}

    report = await json_of(stack, "report", "report", service, "--out", str(tmp_path / "r"))
    assert report["workflow_id"] == f"rollout-{service}" and report["state"] == "promoted"
    assert set(report["files"]) == {"md", "html", "json"}
    assert all(Path(p).is_file() for p in report["files"].values())
    review = await json_of(stack, "report", "report", "--since", "1h", "--service", service)
    assert review["count"] >= 1


async def test_freezes_schedules_and_the_dev_stack_as_json(
    stack: devstack.StackInfo, client: Client, tmp_path: Path
) -> None:
    service = f"js-{uuid.uuid4().hex[:6]}"
    added = await json_of(
        stack, "freeze",
        "freeze", "add", "--service", service, "--until", "2030-01-01T00:00", "--reason", "json",
    )  # fmt: skip
    assert added["action"] == "add" and added["freeze"]["service"] == service
    freeze_id = added["freeze"]["id"]
    listed = await json_of(stack, "freeze", "freeze", "list")
    assert freeze_id in [f["id"] for f in listed["freezes"]]
    removed = await json_of(stack, "freeze", "freeze", "remove", freeze_id)
    assert removed["action"] == "remove" and removed["freeze"]["id"] == freeze_id

    path = plan_file(stack, tmp_path, QUICK)
    at = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    created = await json_of(stack, "schedule", "schedule", str(path), "--at", at)
    schedule_id = created["schedule_id"]
    assert created["action"] == "create" and created["first_start"].startswith(at[:10])
    for _ in range(60):  # the schedule list lags behind the create a little
        listed = await json_of(stack, "schedule", "schedule", "list")
        if schedule_id in [s["schedule_id"] for s in listed["schedules"]]:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"{schedule_id} never listed: {listed}")
    deleted = await json_of(stack, "schedule", "schedule", "delete", schedule_id)
    assert deleted == {**deleted, "action": "delete", "schedule_id": schedule_id}

    fault = await json_of(
        stack, "dev-fault", "dev", "fault", "--dir", stack.dir, "--latency-ms", "1"
    )
    assert fault["version"] == "canary" and fault["fault"]["latency_ms"] == 1
    await json_of(stack, "dev-fault", "dev", "fault", "--dir", stack.dir)
    up = await json_of(stack, "dev-up", "dev", "up", "--dir", stack.dir)
    assert up["temporal_address"] == stack.temporal_address and up["dir"] == stack.dir


# -- the Python API's example ---------------------------------------------------------------------


def example() -> str:
    """The program docs/python-api.md shows first."""
    page = (ROOT / "docs" / "python-api.md").read_text()
    found = re.search(r"```python\n(.*?)```", page, re.S)
    assert found, "docs/python-api.md shows no Python program"
    return found.group(1)


async def test_the_python_api_example_runs_a_rollout(
    stack: devstack.StackInfo, client: Client, tmp_path: Path
) -> None:
    path = plan_file(stack, tmp_path, QUICK)
    (tmp_path / "example.py").write_text(example())
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": stack.temporal_address,
        "TEMPORAL_NAMESPACE": stack.namespace,
        "ROLLOUT_TASK_QUEUE": stack.task_queue,
        "ROLLOUT_DIR": stack.dir,
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(tmp_path / "example.py"),
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    said = out.decode()
    assert process.returncode == 0, said + err.decode()
    assert f"started rollout-{path.stem}" in said
    assert "paused at 10%" in said and "promoted at 100%" in said, said
    status = await operations.status(client, path.stem)
    assert status.state == RolloutState.PROMOTED
    kinds = [str(command.kind) for command in status.commands]
    assert kinds[:2] == ["pause", "resume"], kinds
    assert json.loads(status.model_dump_json())["service"] == path.stem
