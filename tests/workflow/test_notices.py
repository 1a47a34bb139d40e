"""The events a rollout tells its channels, in order, with the data their templates need."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from client.operations import send_command, start_rollout
from plans import CommandKind, GateOutcome, Notification, OperatorCommand, RolloutState
from tests.workflow.conftest import Doubles, make_plan, skip, verdicts
from tests.workflow.test_rollout_workflow import rolled_back, settle, status_of, until
from workflows.rollout import RolloutWorkflow

EVERYTHING = {"name": "team", "url_env": "ROLLOUT_TEAM_URL"}
ONCALL = {"name": "oncall", "url_env": "ROLLOUT_ONCALL_URL", "min_severity": "critical"}
STAGES = [
    {"name": "ten", "weight": 10, "bake": "30m", "check_every": "10m"},
    {"name": "half", "weight": 50, "bake": "30m", "check_every": "10m"},
    {"name": "full", "weight": 100, "bake": "30m", "check_every": "10m"},
]


def told(doubles: Doubles) -> list[tuple[str, list[str]]]:
    """Each event told, with the channels it went to."""
    return [
        (n.notice.kind.value, [c.name for c in n.targets()])
        for n in doubles.notifications
        if n.notice is not None
    ]


async def test_a_promoted_rollout_tells_each_step(env: Any, worker: str, doubles: Doubles) -> None:
    plan = make_plan(notify={"channels": [EVERYTHING, ONCALL]}, stages=STAGES)
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    assert told(doubles) == [
        ("started", ["team"]),
        ("stage_passed", ["team"]),
        ("stage_passed", ["team"]),
        ("stage_passed", ["team"]),
        ("promoted", ["team"]),
    ]
    notices = [n.notice for n in doubles.notifications if n.notice is not None]
    assert [n.stage for n in notices[1:4]] == ["ten", "half", "full"]
    assert [n.weight for n in notices[1:4]] == [10, 50, 100]
    assert [s.weight for s in notices[0].stages] == [10, 50, 100]
    assert notices[1].verdicts[0].gate == "error-rate"  # the table of gates of the stage
    assert notices[-1].reason == "all stages passed"
    # Keys name each event once for the rollout: no two alike.
    keys = [n.key for n in notices]
    assert len(set(keys)) == len(keys)
    assert all(k.startswith(f"{plan.workflow_id}/") for k in keys)
    # No secret URL travels: only the names of the variables holding them (the report's
    # own link, written by the worker at the end, is no secret).
    no_report = {"notice": {"report_url"}}
    assert all("://" not in n.model_dump_json(exclude=no_report) for n in doubles.notifications)
    # The final message links the report written just before it; earlier ones had none.
    assert [r.workflow_id for r in doubles.reports] == [plan.workflow_id]
    assert notices[-1].report_url == f"file:///reports/{plan.workflow_id}/report.html"
    assert all(n.report_url is None for n in notices[:-1])


async def test_a_rolled_back_rollout_tells_the_rollback(
    env: Any, worker: str, doubles: Doubles
) -> None:
    doubles.judge = lambda n, check: verdicts(
        check, GateOutcome.FAIL if n >= 4 else GateOutcome.PASS, 0.2 if n >= 4 else 0.01
    )
    plan = make_plan(notify={"channels": [EVERYTHING, ONCALL]}, stages=STAGES)
    handle = await start_rollout(env.client, plan, worker)
    await rolled_back(env, handle)
    assert told(doubles) == [
        ("started", ["team"]),
        ("stage_passed", ["team"]),
        ("rollback_started", ["team", "oncall"]),
        ("rolled_back", ["team", "oncall"]),
    ]
    start, end = (n.notice for n in doubles.notifications[-2:])
    assert start is not None and end is not None
    assert start.weight == 50 and start.stage == "half"
    assert "error-rate" in start.reason and "3 check(s) in a row" in start.reason
    assert start.restored == [f"restore 100% stable on {plan.router.describe()}"]
    assert end.restored == start.restored
    assert end.weight == 0
    assert end.verdicts[0].outcome == GateOutcome.FAIL and end.verdicts[0].value == 0.2
    assert end.report_url == f"file:///reports/{plan.workflow_id}/report.html"
    assert start.report_url is None  # stable is put back before any report is written


async def test_a_report_that_cannot_be_written_changes_no_outcome(
    env: Any, worker: str, doubles: Doubles
) -> None:
    doubles.report_fails = True
    plan = make_plan(notify={"channels": [EVERYTHING]}, stages=STAGES)
    handle = await start_rollout(env.client, plan, worker)
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED and result.reason == "all stages passed"
    assert len(doubles.reports) == 2  # tried again once, then given up
    assert told(doubles)[-1] == ("promoted", ["team"])
    final = doubles.notifications[-1].notice
    assert final is not None and final.report_url is None
    assert (await status_of(handle)).state == RolloutState.PROMOTED


async def test_awaiting_approval_is_told_once(env: Any, worker: str, doubles: Doubles) -> None:
    stages = [
        {"name": "ten", "weight": 10, "bake": "30m", "check_every": "10m", "approval": True},
        {"name": "full", "weight": 100, "bake": "30m", "check_every": "10m"},
    ]
    plan = make_plan(notify={"channels": [EVERYTHING]}, stages=stages)
    handle: WorkflowHandle[Any, Any] = await start_rollout(env.client, plan, worker)
    for _ in range(200):
        if (await status_of(handle)).state == RolloutState.AWAITING_APPROVAL:
            break
        await skip(env, timedelta(minutes=5))
    # A pause and a resume while it waits do not tell it again.
    for kind in (CommandKind.PAUSE, CommandKind.RESUME):
        await send_command(env.client, plan.service, OperatorCommand(kind=kind, by="ana"))
        await skip(env, timedelta(minutes=30))
    await send_command(
        env.client, plan.service, OperatorCommand(kind=CommandKind.APPROVE, by="ana")
    )
    result = await settle(env, handle)
    assert result.state == RolloutState.PROMOTED
    kinds = [kind for kind, _ in told(doubles)]
    assert kinds == ["started", "awaiting_approval", "stage_passed", "stage_passed", "promoted"]


async def test_the_plans_webhook_hears_only_what_it_always_did(
    env: Any, worker: str, doubles: Doubles
) -> None:
    plan = make_plan(notify={"webhook_url_env": "ROLLOUT_TEST_WEBHOOK"}, stages=STAGES)
    handle = await start_rollout(env.client, plan, worker)
    await settle(env, handle)
    assert [kind for kind, _ in told(doubles)] == ["started", "promoted"]
    assert doubles.notes == [
        f"Rollout of {plan.service} v2 started: ten 10% -> half 50% -> full 100%",
        f"Rollout of {plan.service} v2 promoted: all stages passed",
    ]


async def test_runs_that_tell_events_replay(env: Any, worker: str, doubles: Doubles) -> None:
    doubles.judge = lambda n, check: verdicts(
        check, GateOutcome.FAIL if n >= 4 else GateOutcome.PASS, 0.2 if n >= 4 else 0.01
    )
    for notify in ({"channels": [EVERYTHING, ONCALL]}, {"webhook_url_env": "ROLLOUT_HOOK"}):
        plan = make_plan(notify=notify, stages=STAGES)
        handle = await start_rollout(env.client, plan, worker)
        await rolled_back(env, handle)
        history = await handle.fetch_history()
        replayer = Replayer(workflows=[RolloutWorkflow], data_converter=pydantic_data_converter)
        result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
        assert result.replay_failure is None
        # One version of history: no patch markers (docs/upgrading.md).
        markers = {e.marker_recorded_event_attributes.marker_name for e in history.events}
        assert "core_patch" not in markers


async def test_a_rollback_waits_for_no_receiver(env: Any, worker: str, doubles: Doubles) -> None:
    doubles.judge = lambda n, check: verdicts(check, GateOutcome.FAIL, 0.2)
    restored = threading.Event()
    saw_restore_first: list[bool] = []

    def slow_receiver(req: Notification) -> None:
        # The rollback notice is still being sent when stable is put back.
        if req.notice is not None and req.notice.kind.value == "rollback_started":
            saw_restore_first.append(restored.wait(timeout=60))

    def watch_shifts() -> None:
        while not restored.is_set() and not saw_restore_first:
            if 0 in doubles.shifts:
                restored.set()
            time.sleep(0.01)

    doubles.on_notify = slow_receiver
    watcher = threading.Thread(target=watch_shifts, daemon=True)
    watcher.start()
    plan = make_plan(notify={"channels": [ONCALL]}, stages=STAGES)
    handle = await start_rollout(env.client, plan, worker)
    await rolled_back(env, handle)
    watcher.join(timeout=5)
    assert saw_restore_first == [True]
    assert told(doubles) == [("rollback_started", ["oncall"]), ("rolled_back", ["oncall"])]


async def test_blue_green_tells_its_preview_and_flip(
    env: Any, worker: str, doubles: Doubles
) -> None:
    plan = make_plan(
        stages=[],
        strategy="blue_green",
        blue_green={"preview": "10m", "post_promotion_for": "30m", "check_every": "5m"},
        notify={"channels": [EVERYTHING]},
    )
    handle = await start_rollout(env.client, plan, worker)
    await until(handle, lambda s: s.state == RolloutState.AWAITING_APPROVAL, env)
    await send_command(
        env.client, plan.service, OperatorCommand(kind=CommandKind.APPROVE, by="ana")
    )
    result = await settle(env, handle, step=timedelta(minutes=5))
    assert result.state == RolloutState.PROMOTED
    kinds = [kind for kind, _ in told(doubles)]
    assert kinds[:2] == ["started", "awaiting_approval"]
    assert kinds[-1] == "promoted"
    notices = [n.notice for n in doubles.notifications if n.notice is not None]
    assert notices[0].strategy == "blue-green"
    assert notices[1].stage == "preview" and notices[1].weight == 0
    assert next(n.stage for n in notices if n.kind.value == "stage_passed") == "preview"
