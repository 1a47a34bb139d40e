"""A flag file's bad day mid-rollout: restored from an old backup, made read-only during a shift."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

import devstack
from client import operations
from demo.example_plans import flag_definition, flag_json
from plans import RolloutResult, RolloutState
from tests.faults.chaos import baking, eventually, until
from tests.flag_stack import (
    evaluated,
    evaluated_near,
    file_percent,
    flag_plan,
    flag_stack,
    reset_flag,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.StackInfo]:
    with flag_stack(tmp_path_factory.mktemp("flagd-faults")) as info:
        yield info


@pytest.fixture(scope="module")
async def client(stack: devstack.StackInfo) -> AsyncIterator[Client]:
    yield await Client.connect(
        stack.temporal_address, namespace=stack.namespace, data_converter=pydantic_data_converter
    )


@pytest.fixture(autouse=True)
def clean_flag(stack: devstack.StackInfo) -> Iterator[None]:
    yield
    reset_flag(stack)


async def test_a_flag_file_restored_from_an_old_backup_is_repaired_within_one_check(
    stack: devstack.StackInfo, client: Client
) -> None:
    assert stack.flag_file is not None
    plan = flag_plan(
        stack,
        [
            {"name": "ten", "weight": 10, "bake": "12s", "check_every": "1s"},
            {"name": "full", "weight": 100, "bake": "5s", "check_every": "1s"},
        ],
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    await until(client, plan.service, lambda s: baking(0)(s) and s.checks >= 2)
    # Yesterday's backup put back as `cp -p` would: everyone on stable, and an old mtime.
    backup = stack.flag_file + ".bak"
    with open(backup, "w") as file:
        file.write(flag_json(flag_definition()))
    yesterday = time.time() - 86_400
    os.utime(backup, (yesterday, yesterday))
    os.replace(backup, stack.flag_file)
    restored_at = (await operations.status(client, plan.service)).checks

    async def back_at_ten() -> bool:
        return await asyncio.to_thread(file_percent, stack) == 10.0

    await eventually(back_at_ten, 30, "the flag file back at the stage's 10%")
    repaired = await operations.status(client, plan.service)
    # Put back by the first check after the restore (one more may have been in flight).
    assert repaired.checks - restored_at <= 2, (restored_at, repaired.checks)
    # The re-asserted file is newer than anything loaded, so the services take it again.
    assert await evaluated_near(stack, 10), await evaluated(stack)
    result = await asyncio.wait_for(handle.result(), timeout=90)
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    final = await operations.status(client, plan.service)
    drift = [e.text for e in final.events if e.kind == "drift"]
    assert drift and "routes canary 0%" in drift[0] and "set canary 10%" in drift[0], drift
    with open(stack.flag_file) as file:
        assert json.load(file)["flags"][stack.flag_key]["targeting"] == {
            "fractional": [["canary", 100], ["stable", 0]]
        }


async def test_a_read_only_flag_file_holds_the_shift_with_a_clear_error_until_writable(
    stack: devstack.StackInfo, client: Client
) -> None:
    assert stack.flag_file is not None
    plan = flag_plan(
        stack,
        [
            {"name": "ten", "weight": 10, "bake": "5s", "check_every": "1s"},
            {"name": "thirty", "weight": 30, "bake": "5s", "check_every": "1s"},
            {"name": "full", "weight": 100, "bake": "5s", "check_every": "1s"},
        ],
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    await until(client, plan.service, baking(0))
    with open(stack.flag_file) as file:
        before = file.read()
    os.chmod(stack.flag_file, 0o444)
    failures: list[str] = []

    async def shift_failing() -> bool:
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name == "shift_traffic" and pending.attempt >= 2:
                failures.append(pending.last_failure.message)
                return True
        return False

    await eventually(shift_failing, 60, "the shift to 30% retried on the read-only file")
    assert "flags.json is not writable (mode 0444)" in failures[0], failures
    assert "chmod u+w" in failures[0]
    status = await operations.status(client, plan.service)
    assert status.state == RolloutState.SHIFTING and status.stage_index == 1
    # Never half a file, and nothing moved while it could not be written.
    with open(stack.flag_file) as file:
        assert file.read() == before
    assert await asyncio.to_thread(file_percent, stack) == 10.0
    os.chmod(stack.flag_file, 0o644)
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert await asyncio.to_thread(file_percent, stack) == 100.0
