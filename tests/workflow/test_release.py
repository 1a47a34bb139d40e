"""ReleaseWorkflow on the time-skipping server: waves, approval, failures, commands."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import (
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError

from plans import CommandKind, GateOutcome, OperatorCommand
from plans.runtime.release import ReleaseCommand, ReleaseResult, ReleaseState, TargetState
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


async def keep(handle: Any, name: str) -> None:
    """With ROLLOUT_CAPTURE_HISTORIES=1, keep the run's history in tests/histories/release/
    as ``name``.json, for the replay test of this version of the workflow."""
    if os.environ.get("ROLLOUT_CAPTURE_HISTORIES") != "1":
        return
    history = await handle.fetch_history()
    folder = Path(__file__).parent.parent / "histories" / "release"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(history.to_json())


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


async def failed_result(handle) -> tuple[ApplicationError, ReleaseResult]:
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    return cause, ReleaseResult.model_validate(cause.details[0])


FOUR_WAVES = [
    {"targets": ["staging"]},
    {"targets": ["eu"]},
    {"targets": ["us-west", "us-east"], "max_parallel": 2},
    {"targets": ["ap"]},
]


def with_ap(**overrides) -> dict:
    targets = {n: {"placeholders": {"region": n}} for n in (*REGIONS, "ap")}
    return {"targets": targets, "waves": FOUR_WAVES, **overrides}


async def test_a_failing_target_halts_the_release_and_leaves_promoted_targets(env) -> None:
    doubles = failing_in("us-east")
    fleet = make_fleet(**with_ap())
    async with fleet_worker(env, doubles) as queue:
        handle = await start(env.client, fleet, queue)
        await closed(env, fleet.workflow_id)
        error, result = await failed_result(handle)
    assert error.type == "ReleaseHalted"
    assert result.state == ReleaseState.HALTED
    assert result.failed_target == "us-east"
    assert "target us-east rolled back" in result.reason and "error-rate" in result.reason
    assert result.targets == {
        "staging": TargetState.PROMOTED,
        "eu": TargetState.PROMOTED,
        "us-west": TargetState.PROMOTED,  # halt leaves the wave's other targets to finish
        "us-east": TargetState.ROLLED_BACK,
        "ap": TargetState.SKIPPED,
    }
    assert doubles.new_weight("us-east") == 0
    assert doubles.weights_of("us-east")[-1] == 0
    for region in ("staging", "eu", "us-west"):
        assert doubles.new_weight(region) == 100
    assert doubles.weights_of("ap") == []  # the last wave never started


async def test_rollback_all_puts_every_promoted_target_back_newest_first(env) -> None:
    doubles = failing_in("us-east")
    fleet = make_fleet(**with_ap(on_target_failure="rollback_all"))
    async with fleet_worker(env, doubles) as queue:
        handle = await start(env.client, fleet, queue)
        await closed(env, fleet.workflow_id)
        error, result = await failed_result(handle)
        status = await release_status(handle)
        await keep(handle, "rolled_back_all")
    assert error.type == "ReleaseRolledBack"
    assert result.state == ReleaseState.ROLLED_BACK
    assert result.failed_target == "us-east"
    for region in REGIONS:
        assert doubles.new_weight(region) == 0, region
    assert doubles.weights_of("ap") == []
    assert result.targets["us-east"] == TargetState.ROLLED_BACK
    assert result.targets["staging"] == TargetState.RESTORED
    assert result.targets["eu"] == TargetState.RESTORED
    # us-west ran beside us-east: cancelled and rolled back by its own compensation, or, had
    # it promoted first, restored with the others.
    assert result.targets["us-west"] in (TargetState.ROLLED_BACK, TargetState.RESTORED)
    # Newest first: the order the targets promoted in, reversed, each its own restore run.
    restored = [
        e.text.split(":")[0]
        for e in status.events
        if e.kind == "restore" and "putting stable back" in e.text
    ]
    promoted = sorted(restored, key=lambda r: status.targets[r].ended_at)
    assert restored == list(reversed(promoted))
    assert restored[-2:] == ["eu", "staging"]
    assert sorted(doubles.claims).count(fleet.child_id("eu") + "-restore") == 1


async def test_commands_reach_every_running_target_and_say_where_they_did_not(env) -> None:
    doubles = FleetDoubles()
    fleet = make_fleet()
    async with fleet_worker(env, doubles) as queue:
        handle = await start(env.client, fleet, queue)
        await until(
            env,
            handle,
            lambda s: (
                s.targets["us-west"].state == TargetState.RUNNING
                and s.targets["us-east"].state == TargetState.RUNNING
            ),
        )
        record = await handle.execute_update(
            ReleaseWorkflow.command,
            ReleaseCommand(
                command=OperatorCommand(kind=CommandKind.PAUSE, by="kim", reason="incident")
            ),
        )
        assert record.accepted
        assert sorted(record.sent_to) == ["us-east", "us-west"]
        assert record.not_sent == {"staging": "ended (promoted)", "eu": "ended (promoted)"}
        for region in ("us-west", "us-east"):
            child = env.client.get_workflow_handle(fleet.child_id(region))
            child_status = await until_child(env, child, lambda s: s.paused)
            pause = [c for c in child_status.commands if c.kind == "pause"]
            assert pause and pause[-1].accepted and pause[-1].by == "kim"
            assert "incident" in pause[-1].reason and fleet.workflow_id in pause[-1].reason
        # Paused, the targets stay where they are, however long.
        await skip(env, timedelta(hours=6))
        assert (await release_status(handle)).state == ReleaseState.PAUSED
        one = await handle.execute_update(
            ReleaseWorkflow.command,
            ReleaseCommand(command=OperatorCommand(kind=CommandKind.RESUME, by="kim")),
        )
        assert sorted(one.sent_to) == ["us-east", "us-west"]
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ReleaseWorkflow.command,
                ReleaseCommand(command=OperatorCommand(kind=CommandKind.PAUSE), target="staging"),
            )
        assert "target staging is not running (promoted)" in str(refused.value.cause)
        await closed(env, fleet.workflow_id)
        status = await release_status(handle)
    assert status.state == ReleaseState.PROMOTED


async def until_child(env, child, predicate):
    from plans import RolloutStatus

    for _ in range(200):
        answer = await child.query("status", result_type=RolloutStatus)
        if predicate(answer):
            return answer
        await skip(env, timedelta(minutes=1))
    raise AssertionError("the target never got there")


async def test_operator_rollback_of_the_release_mid_wave_restores_every_target(env) -> None:
    doubles = FleetDoubles()
    fleet = make_fleet()
    async with fleet_worker(env, doubles) as queue:
        handle = await start(env.client, fleet, queue)
        await until(env, handle, lambda s: s.targets["eu"].state == TargetState.RUNNING)
        await until_child(
            env, env.client.get_workflow_handle(fleet.child_id("eu")), lambda s: s.canary_weight
        )
        record = await handle.execute_update(
            ReleaseWorkflow.command,
            ReleaseCommand(
                command=OperatorCommand(kind=CommandKind.ROLLBACK, by="ana", reason="bad data")
            ),
        )
        assert record.sent_to == ["eu"]
        assert record.not_sent["staging"].startswith("promoted")
        await closed(env, fleet.workflow_id)
        error, result = await failed_result(handle)
        await keep(handle, "commanded_rollback")
    assert error.type == "ReleaseRolledBack"
    assert result.state == ReleaseState.ROLLED_BACK
    assert result.reason == "rolled back by ana: bad data"
    assert result.targets["eu"] == TargetState.ROLLED_BACK
    assert result.targets["staging"] == TargetState.RESTORED
    assert result.targets["us-west"] == TargetState.SKIPPED
    for region in REGIONS:
        assert doubles.new_weight(region) == 0
    assert doubles.weights_of("us-west") == []


async def test_the_release_continues_as_new_between_waves_without_repeating_one(env) -> None:
    doubles = FleetDoubles()
    fleet = make_fleet()
    async with fleet_worker(env, doubles) as queue:
        handle = await start(env.client, fleet, queue, waves_per_run=1)
        await closed(env, fleet.workflow_id)
        latest = env.client.get_workflow_handle(fleet.workflow_id)
        status = await release_status(latest)
        result = ReleaseResult.model_validate(await latest.result())
        await keep(handle, "promoted_continued_as_new")
    assert result.state == ReleaseState.PROMOTED
    assert status.run_count == 3
    assert handle.result_run_id != (await latest.describe()).run_id
    # No child started twice, none skipped.
    assert sorted(doubles.claims) == sorted(fleet.child_id(r) for r in REGIONS)
    for region in REGIONS:
        assert doubles.weights_of(region) == [10, 100]


async def test_the_cli_functions_start_show_and_steer_a_release(env) -> None:
    from rich.console import Console
    from temporalio.common import SearchAttributeKey

    from client import releases
    from client.steering import CommandRefused
    from starter import release_view

    doubles = FleetDoubles()
    fleet = make_fleet(
        waves=[
            {"targets": ["staging"]},
            {"targets": ["eu", "us-west", "us-east"], "approval": True},
        ]
    )
    async with fleet_worker(env, doubles) as queue:
        handle = await releases.start_release(env.client, fleet, queue)
        with pytest.raises(releases.AlreadyReleasing, match=fleet.workflow_id):
            await releases.start_release(env.client, fleet, queue)
        await until(env, handle, lambda s: s.state == ReleaseState.AWAITING_APPROVAL)
        assert await releases.shows_release(env.client, fleet.service)
        with pytest.raises(CommandRefused, match="target eu is not running"):
            await releases.send_release_command(
                env.client,
                fleet.service,
                ReleaseCommand(command=OperatorCommand(kind=CommandKind.PAUSE), target="eu"),
            )
        record = await releases.send_release_command(
            env.client,
            fleet.service,
            ReleaseCommand(command=OperatorCommand(kind=CommandKind.APPROVE, by="ana")),
        )
        assert record.accepted and record.sent_to == []
        await until(env, handle, lambda s: s.targets["us-east"].state == TargetState.RUNNING)
        status = await releases.release_status(env.client, fleet.service)
        children = await releases.target_statuses(env.client, status)
        assert set(children) == set(REGIONS)
        console = Console(width=200, record=True)
        console.print(release_view.release_tree(status, children))
        shown = console.export_text()
        assert f"release {fleet.service} v2" in shown
        assert "wave 1: done" in shown and "wave 2 (approval): running" in shown
        assert "staging promoted" in shown
        assert "us-east running | " in shown and "canary 10%" in shown
        child = await env.client.get_workflow_handle(fleet.child_id("us-east")).describe()
        attributes = child.typed_search_attributes
        assert attributes.get(SearchAttributeKey.for_keyword("RolloutTarget")) == "us-east"
        assert attributes.get(SearchAttributeKey.for_keyword("RolloutRelease")) == fleet.workflow_id
        await closed(env, fleet.workflow_id)
        final = await releases.release_status(env.client, fleet.service)
    assert final.state == ReleaseState.PROMOTED
    assert release_view.release_exit_code(final.state) == 0
