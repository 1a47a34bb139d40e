"""The router restarts or the worker goes away mid-bake; two rollouts reach for one target."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client

import devstack
from client import operations
from plans import RolloutResult, RolloutState
from tests.faults.chaos import (
    WeightRecorder,
    baking,
    eventually,
    haproxy,
    kill9,
    quick_plan,
    until,
)
from tests.faults.restart import restart
from tests.stack_plans import error_rate_plan

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROLLOUT = str(Path(sys.executable).parent / "rollout")


def event_time(status, kind: str, contains: str = "") -> datetime:
    return next(e.at for e in status.events if e.kind == kind and contains in e.text)


async def test_a_restarted_haproxy_is_put_back_within_one_check_and_the_rollout_promotes(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    plan = quick_plan(
        stack,
        [
            {"name": "ten", "weight": 10, "bake": "10s", "check_every": "1s"},
            {"name": "full", "weight": 100, "bake": "3s", "check_every": "1s"},
        ],
    )
    router = haproxy(stack)
    with WeightRecorder(stack) as weights:
        handle = await operations.start_rollout(client, plan, stack.task_queue)
        launched.append(plan.workflow_id)
        await until(client, plan.service, lambda s: baking(0)(s) and s.checks >= 2)
        # HAProxy comes back with its configured weights: 100 stable, 0 canary.
        await asyncio.to_thread(restart, Path(stack.dir), "haproxy")
        checks_at_restart = (await operations.status(client, plan.service)).checks

        async def back_at_ten() -> bool:
            split = await asyncio.to_thread(router.get_split, "stable", "canary")
            return split.canary_weight == 10 and split.stable_weight == 90

        await eventually(back_at_ten, 30, "HAProxy back at the stage's 10%")
        repaired = await operations.status(client, plan.service)
        result = await asyncio.wait_for(handle.result(), timeout=90)
    # Put back at the first check after the restart (one more may have been in flight).
    assert repaired.checks - checks_at_restart <= 2, (checks_at_restart, repaired.checks)
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    assert (100, 0) in weights.splits and weights.canary_weights[-1] == 100
    final = await operations.status(client, plan.service)
    drift = [e.text for e in final.events if e.kind == "drift"]
    assert drift and "routes canary 0%" in drift[0] and "set canary 10%" in drift[0], drift


async def test_a_blue_green_flip_undone_by_a_restart_is_flipped_again_within_one_check(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    plan = quick_plan(
        stack,
        [],
        strategy="blue_green",
        blue_green={
            "preview": "4s",
            "auto_promote_after": "4s",
            "post_promotion_for": "12s",
            "check_every": "1s",
            "pre_promotion": [],  # no preview traffic here: the gate judges after the flip
        },
    )
    router = haproxy(stack)
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    launched.append(plan.workflow_id)
    await until(client, plan.service, lambda s: baking(1)(s) and s.checks >= 6)
    # HAProxy comes back with blue at 100: the flip is undone under the rollout's feet.
    await asyncio.to_thread(restart, Path(stack.dir), "haproxy")

    async def green_again() -> bool:
        split = await asyncio.to_thread(router.get_split, "stable", "canary")
        return (split.stable_weight, split.canary_weight) == (0, 100)

    await eventually(green_again, 30, "HAProxy back on green")
    result = await asyncio.wait_for(handle.result(), timeout=90)
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    final = await operations.status(client, plan.service)
    drift = [e.text for e in final.events if e.kind == "drift"]
    assert drift and "routes canary 0%" in drift[0] and "set canary 100%" in drift[0], drift


async def test_time_the_worker_was_away_is_not_counted_as_bake(
    stack: devstack.StackInfo, client: Client, launched: list[str]
) -> None:
    plan = quick_plan(
        stack,
        [
            {"name": "ten", "weight": 10, "bake": "12s", "check_every": "1s"},
            {"name": "full", "weight": 100, "bake": "3s", "check_every": "1s"},
        ],
    )
    handle = await operations.start_rollout(client, plan, stack.task_queue)
    launched.append(plan.workflow_id)
    await until(client, plan.service, lambda s: baking(0)(s) and s.checks >= 2)
    directory = Path(stack.dir)
    await asyncio.to_thread(kill9, directory, "worker")
    # Longer than the stage's bake: without the rule, the stage would pass at once.
    await asyncio.sleep(14)
    await asyncio.to_thread(restart, directory, "worker")
    result = await asyncio.wait_for(handle.result(), timeout=90)
    assert isinstance(result, RolloutResult) and result.state == RolloutState.PROMOTED
    final = await operations.status(client, plan.service)
    gap = next(e.text for e in final.events if e.kind == "gap")
    assert "not counted as bake time" in gap
    started = event_time(final, "stage", "'ten' (10%) started")
    passed = event_time(final, "stage", "'ten' (10%) passed")
    # 12 s of bake plus most of the 14 s nobody watched.
    assert (passed - started).total_seconds() >= 12 + 14 - 6, (started, passed)


async def test_two_starts_on_one_backend_at_the_same_moment_one_is_refused(
    stack: devstack.StackInfo, client: Client, launched: list[str], tmp_path: Path
) -> None:
    stages = [{"name": "ten", "weight": 10, "bake": "6s", "check_every": "1s"}]
    files = []
    for name in ("left", "right"):
        service = f"{name}-{uuid.uuid4().hex[:6]}"
        data = error_rate_plan(stack, service, stages, window="5s", inconclusive_limit=20)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        files.append((service, path))
        launched.append(f"rollout-{service}")
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": stack.temporal_address,
        "TEMPORAL_NAMESPACE": stack.namespace,
        "ROLLOUT_TASK_QUEUE": stack.task_queue,
    }

    async def start(path: Path) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            ROLLOUT,
            "start",
            str(path),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        return process.returncode or 0, out.decode(), err.decode()

    answers = await asyncio.gather(*(start(path) for _, path in files))
    codes = sorted(code for code, _, _ in answers)
    assert codes == [0, 1], answers
    (winner,) = [s for (s, _), (c, _, _) in zip(files, answers, strict=True) if c == 0]
    (_, _, refusal) = next(a for a in answers if a[0] == 1)
    assert f"rollout-{winner}" in " ".join(refusal.split()), refusal
    assert "one rollout at a time" in " ".join(refusal.split())
    # The winner goes on and, once it has ended, the target is free for the other.
    result = await client.get_workflow_handle(f"rollout-{winner}").result()
    assert result["state"] == "promoted"
    loser_file = next(p for s, p in files if s != winner)
    code, out, err = await start(loser_file)
    assert code == 0, (out, err)
