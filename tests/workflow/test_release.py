"""ReleaseWorkflow on the time-skipping server: waves, approval, failures, commands."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import (
    WorkflowUpdateFailedError,
)

from plans import CommandKind, GateOutcome, OperatorCommand
from plans.release import ReleaseCommand, ReleaseResult, ReleaseState, TargetState
from tests.workflow.conftest import skip, verdicts
from tests.workflow.fleet_doubles import (
    FleetDoubles,
    closed,
    fleet_worker,
    make_fleet,
    release_status,
    start,
    until,
)
from workflows.release import ReleaseWorkflow

REGIONS = ("staging", "eu", "us-west", "us-east")


def failing_in(region: str) -> FleetDoubles:
    doubles = FleetDoubles()
    doubles.judge = lambda backend, check: verdicts(
        check, GateOutcome.FAIL if backend == region else GateOutcome.PASS, 0.5
    )
    return doubles


async def test_waves_run_in_order_and_every_target_promotes(env) -> None:
    doubles = FleetDoubles()
    fleet = make_fleet()
    async with fleet_worker(env, doubles) as queue:
        handle = await start(env.client, fleet, queue)
        await closed(env, fleet.workflow_id)
        result = ReleaseResult.model_validate(await handle.result())
        status = await release_status(handle)
    assert result.state == ReleaseState.PROMOTED
    assert all(state == TargetState.PROMOTED for state in result.targets.values())
    for region in REGIONS:
        assert doubles.weights_of(region) == [10, 100]
        assert doubles.new_weight(region) == 100
    # A wave starts only once the one before it has promoted.
    first = {r: doubles.shifts.index((r, 10)) for r in REGIONS}
    last = {r: doubles.shifts.index((r, 100)) for r in REGIONS}
    assert last["staging"] < first["eu"]
    assert last["eu"] < first["us-west"] and last["eu"] < first["us-east"]
    # Each target's rollout ran once, as a child named after its target.
    assert sorted(doubles.claims) == sorted(fleet.child_id(r) for r in REGIONS)
    assert [w.state for w in status.waves] == ["done", "done", "done"]


async def test_max_parallel_holds_a_wave_to_that_many_targets_at_once(env) -> None:
    doubles = FleetDoubles()
    fleet = make_fleet(
        waves=[{"targets": ["staging", "eu", "us-west", "us-east"], "max_parallel": 2}]
    )
    async with fleet_worker(env, doubles) as queue:
        handle = await start(env.client, fleet, queue)
        await closed(env, fleet.workflow_id)
        status = await release_status(handle)
    runs = status.targets
    assert all(run.state == TargetState.PROMOTED for run in runs.values())
    for name, run in runs.items():
        assert run.started_at is not None and run.ended_at is not None
        at_once = [
            other
            for other, o in runs.items()
            if o.started_at is not None
            and o.ended_at is not None
            and o.started_at <= run.started_at < o.ended_at
        ]
        assert len(at_once) <= 2, (name, at_once)
    # Two started at once, the other two only as the first ones ended.
    started = sorted(run.started_at for run in runs.values() if run.started_at)
    assert started[0] == started[1] < started[2]


async def test_a_wave_with_approval_waits_for_approve(env) -> None:
    doubles = FleetDoubles()
    fleet = make_fleet(
        waves=[
            {"targets": ["staging"]},
            {"targets": ["eu", "us-west", "us-east"], "approval": True, "bake_between": "2h"},
        ]
    )
    async with fleet_worker(env, doubles) as queue:
        handle = await start(env.client, fleet, queue)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ReleaseWorkflow.command,
                ReleaseCommand(command=OperatorCommand(kind=CommandKind.APPROVE)),
            )
        assert "no wave awaits approval" in str(refused.value.cause)
        waiting = await until(env, handle, lambda s: s.state == ReleaseState.AWAITING_APPROVAL)
        assert waiting.targets["staging"].state == TargetState.PROMOTED
        # A day later it still waits: nothing of the second wave has moved.
        await skip(env, timedelta(days=1))
        assert (await release_status(handle)).state == ReleaseState.AWAITING_APPROVAL
        assert doubles.weights_of("eu") == []
        staging_end = waiting.targets["staging"].ended_at
        record = await handle.execute_update(
            ReleaseWorkflow.command,
            ReleaseCommand(command=OperatorCommand(kind=CommandKind.APPROVE, by="ana")),
        )
        assert record.accepted
        await closed(env, fleet.workflow_id)
        status = await release_status(handle)
    assert status.state == ReleaseState.PROMOTED
    eu_start = status.targets["eu"].started_at
    assert staging_end is not None and eu_start is not None
    assert eu_start - staging_end >= timedelta(hours=2)  # bake_between
    assert any(c.kind == "approve" and c.by == "ana" for c in status.commands)
